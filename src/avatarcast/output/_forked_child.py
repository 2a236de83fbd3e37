"""Helper processes (the RTMP push, the WHEP server) forked by the zygote instead of started cold.

A cold helper is a fresh interpreter that imports PyAV (the push: 0.27 CPU s) or aiortc (the
WHEP server) before it can serve, and holds its own copy of them (~41 MB and ~85 MB RSS). A
worker forked from the zygote (``runner.zygote``) gets a link to it, a ``SOCK_SEQPACKET``
socket, and asks it here to fork the helper instead: the zygote has those modules imported and
is single-threaded, so the helper inherits none of the worker's threads, locks or sockets, and
shares the zygote's pages copy-on-write.

A request is one message: JSON ``{"module", "nice", "group_nice"}`` with five descriptors
(SCM_RIGHTS): the helper's inbox (read end), status pipe (write end), stdout, stderr, and an
exit pipe. The answer is ``{"pid": N}`` with a pidfd of the helper, or ``{"error": ...}``. The
helper is the zygote's child: the zygote reaps it and writes its wait status on the exit pipe,
which :class:`ForkedChild` reads. ``nice`` (the asking thread's) and ``group_nice`` (its
scheduling group's) are what a cold helper would have inherited from that thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["CHILD_MODULES", "UNKNOWN_EXIT", "ChildForker", "ForkedChild", "group_nice"]

log = logging.getLogger(__name__)

#: the only modules a worker may ask the zygote to run, each through its ``main(argv)``
CHILD_MODULES = frozenset({"avatarcast.output._rtmp_push", "avatarcast.output._whep_serve"})
#: exit code of a helper whose status nobody could tell (its zygote died before it ended)
UNKNOWN_EXIT = 1
_REPLY_BYTES = 1024


def group_nice(autogroup: Path = Path("/proc/self/autogroup")) -> int | None:
    """This process's scheduling-group nice (``/autogroup-N nice K``), None without one."""
    try:
        return int(autogroup.read_text().split("nice", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


class ForkedChild:
    """A helper forked by the zygote, with the part of ``subprocess.Popen`` its owners use:
    ``pid``, ``returncode``, ``poll``, ``wait(timeout)`` (``TimeoutExpired`` on time) and
    ``kill``. Signals go through a pidfd, so a recycled pid is never signalled."""

    def __init__(self, module: str, pid: int, pidfd: int, exit_fd: int) -> None:
        self.args = module
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd: int | None = pidfd
        self._exit_fd: int | None = exit_fd
        self._eof = False  # the exit pipe closed with no status: the zygote died
        self._waiting = threading.Lock()
        self._fds = threading.Lock()

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        if not self._waiting.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        try:
            while self.returncode is None:
                fd = self._pidfd if self._eof else self._exit_fd
                assert fd is not None
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
                if self._eof:  # the pidfd is readable: the process has ended, how is unknown
                    self._finish(UNKNOWN_EXIT)
                    break
                data = os.read(fd, 64)
                if not data:
                    self._eof = True
                    continue
                try:
                    self._finish(os.waitstatus_to_exitcode(int(data.split()[0])))
                except ValueError:
                    self._finish(UNKNOWN_EXIT)
            code = self.returncode
            assert code is not None
            return code
        finally:
            self._waiting.release()

    def send_signal(self, sig: int) -> None:
        with self._fds:
            if self.returncode is None and self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def _finish(self, code: int) -> None:
        with self._fds:
            self.returncode = code
            for fd in (self._pidfd, self._exit_fd):
                if fd is not None:
                    os.close(fd)
            self._pidfd = self._exit_fd = None


class ChildForker:
    """This worker's link to its zygote. ``fork`` gives None when the zygote cannot (it died,
    or refused): the caller then starts the helper cold, as without a zygote."""

    def __init__(self, link: socket.socket, *, timeout: float = 10.0) -> None:
        self._link = link
        self._link.settimeout(timeout)
        self._lock = threading.Lock()
        self._broken = False

    @classmethod
    def from_fd(cls, fd: int) -> ChildForker:
        return cls(socket.socket(fileno=fd))

    @property
    def broken(self) -> bool:
        return self._broken

    def fork(
        self, module: str, *, stdout: int | None = None, stderr: int | None = None
    ) -> tuple[ForkedChild, int, int] | None:
        """Fork ``module`` (one of :data:`CHILD_MODULES`) with fresh pipes; returns the child,
        the inbox's write end and the status pipe's read end. ``stdout``/``stderr``: the
        descriptors it writes to (None: this process's own, as a cold child inherits them)."""
        if module not in CHILD_MODULES:
            raise ValueError(f"the zygote does not run {module!r}")
        if self._broken:
            return None
        in_r, in_w = os.pipe()
        st_r, st_w = os.pipe()
        exit_r, exit_w = os.pipe()
        request = {
            "module": module,
            "nice": os.getpriority(os.PRIO_PROCESS, 0),  # this thread's, on Linux
            "group_nice": group_nice(),
        }
        sent = [in_r, st_w, 1 if stdout is None else stdout, 2 if stderr is None else stderr]
        try:
            with self._lock:
                socket.send_fds(self._link, [json.dumps(request).encode()], [*sent, exit_w])
                data, fds, _flags, _addr = socket.recv_fds(self._link, _REPLY_BYTES, 1)
        except OSError as e:  # a timeout too
            log.warning("the zygote did not fork %s: %s; starting it cold", module, e)
            data, fds = b"", []
        finally:
            for fd in (in_r, st_w, exit_w):
                os.close(fd)
        try:
            reply = json.loads(data) if data else {"error": "the zygote is gone"}
        except ValueError:
            reply = {"error": f"bad reply {data[:40]!r}"}
        pid = reply.get("pid")
        if not isinstance(pid, int) or len(fds) != 1:
            for fd in (*fds, in_w, st_r, exit_r):
                os.close(fd)
            if not data:
                self._broken = True  # no zygote any more: every later helper starts cold
            log.warning("no forked %s: %s", module, reply.get("error"))
            return None
        return ForkedChild(module, pid, fds[0], exit_r), in_w, st_r

    def close(self) -> None:
        self._broken = True
        self._link.close()
