"""The zygote: one process that has imported what a stream worker needs, and forks a worker
per start: ``python -m avatarcast.runner.zygote FD BLAS``.

A cold worker spends its first 0.8-2.5 s (more on a loaded machine) importing numpy, PyAV,
SciPy and the pipeline before it reads its spec, and each holds its own copy of those modules
(~100 MB). A worker forked from here starts with all of it in place, and shares those pages
copy-on-write with the zygote and with every other worker forked from it (``gc.freeze`` keeps
the collector from writing to the shared objects; they stay frozen in the workers, which
would never free them anyway: they are the modules' own).

The zygote serves its parent, the server (``runner.forked``), over the Unix socket ``FD``:

- ``fork`` with four file descriptors (SCM_RIGHTS): the worker's stdin, stdout and stderr,
  and a pipe on which it writes its exit code before it ends. Answer ``{"pid": N}`` or
  ``{"error": "..."}`` (then the server starts a cold worker instead).
- ``{"exit": PID, "status": WAITSTATUS}``, sent unasked when the zygote has reaped a worker:
  the workers are its children, and it alone can wait for them.

Each worker it forks gets a link of its own (a ``SOCK_SEQPACKET`` socket), on which it asks
for its helper processes, the RTMP push and the WHEP server (``output._forked_child``): the
zygote forks those too, so they start with PyAV and aiortc imported and share the zygote's
pages instead of being fresh interpreters (~0.3 CPU s and ~40-85 MB each). They are its
children: it writes each one's wait status on the exit pipe the worker gave with the request.
A helper runs ``MODULE.main`` with its inbox and status pipe, in a session of its own whose
scheduling-group nice, and its own nice, are those of the worker's asking thread.

End of the socket means the server is gone: the zygote exits, and its workers, which see the
end of their stdin, stop as they would have (their helpers see the end of their inbox). What
a child must not inherit is undone in it before the worker's (or helper's) own ``main`` runs:
the sockets, links and wake-up pipe are closed, signal handlers are the defaults again, the
random generators are reseeded from the OS, it starts a session of its own (as
``start_new_session`` does for a cold worker), and ``BLAS`` (the server's
``OPENBLAS_NUM_THREADS``, ``-`` if it had none) is restored in its environment. The zygote
runs OpenBLAS without threads (``OPENBLAS_NUM_THREADS=1`` from the server), and before every
fork checks that it has no thread but its own; otherwise it answers with an error and forks
nothing (a lock held by another thread would be held for ever in the child).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import random
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avatarcast.output._forked_child import CHILD_MODULES
from avatarcast.threads import fix_mmap_threshold, set_os_thread_name, trim_heap

__all__ = ["main", "preload", "thread_count"]

_MAX_REQUEST = 4096


def thread_count() -> int:
    """Threads of this process as the kernel counts them (native ones too: OpenBLAS's)."""
    return len(os.listdir("/proc/self/task"))


def preload() -> None:
    """Import what every worker imports, and what most import on their first frame."""
    import espeakng_loader  # noqa: F401
    import PIL.ImageChops
    import PIL.PngImagePlugin  # noqa: F401

    import avatarcast.avatar.render  # the drawn presenter
    import avatarcast.output._rtmp_push  # the helpers forked for workers (PyAV)
    import avatarcast.output._whep_serve
    import avatarcast.output.encoder  # imported on the first frame
    import avatarcast.output.whep  # aiortc, for the WHEP helper
    import avatarcast.output.whep_http
    import avatarcast.pipeline.live
    import avatarcast.runner.worker
    import avatarcast.voice.espeak  # noqa: F401  the offline voice
    from avatarcast.chat.moderation import Moderator
    from avatarcast.programme.disclosure import audio_bed

    with contextlib.suppress(Exception):  # a worker reports a broken lexicon itself
        Moderator()  # compiles the lexicons' patterns into ``re``'s cache: 0.13 s per start
    with contextlib.suppress(Exception):  # a worker reports a broken pack itself
        _draw_backdrops()
    audio_bed()  # the slate's sound, made once (0.04 s per start)


def _draw_backdrops() -> None:
    """The drawn packs' 720p studio backdrops, into ``studio_background``'s cache: 0.10 CPU s
    a stream start no longer spends, and pages its workers share."""
    from avatarcast.avatar.pack import is_twin, list_packs, load_pack
    from avatarcast.avatar.render import SpriteAvatarRenderer

    for name in list_packs():
        if not is_twin(name):
            SpriteAvatarRenderer(load_pack(name)).render_background()  # at its frame size


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    blas = args[1] if len(args) > 1 else "-"
    fix_mmap_threshold()  # as its workers run (see threads.py)
    preload()
    gc.collect()
    gc.freeze()  # what is loaded now stays shared: the workers' collectors never touch it
    trim_heap()  # what the imports and drawings freed (34 MB): not in every child's pages
    child = _Zygote(sock).serve()
    if child is None:
        return 0
    return child(blas)


class _Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel = selectors.DefaultSelector()
        #: workers forked for the server (their exit goes to the server)
        self.children: set[int] = set()
        #: helpers forked for workers: pid -> the exit pipe their status is written on
        self.helpers: dict[int, int] = {}
        #: each worker's link, on which it asks for helpers
        self.links: set[socket.socket] = set()

    def serve(self) -> Callable[[str], int] | None:
        """Answer requests until the server hangs up (None); in a forked child, return what
        the child runs (the caller's stack unwinds first, so nothing of the loop remains)."""
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector via wake_w
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.sel.register(self.wake_r, selectors.EVENT_READ)
        self._send({"ready": os.getpid()})
        while True:
            for key, _ in self.sel.select():
                child: Callable[[str], int] | None = None
                if key.fileobj == self.wake_r:
                    self._drain_wakeups()
                    continue
                if key.fileobj is not self.sock:
                    assert isinstance(key.fileobj, socket.socket)
                    child = self._serve_link(key.fileobj)
                else:
                    request = self._receive()
                    if request is None:
                        return None
                    child = self._fork(*request)
                if child is not None:
                    return child
            self._reap()

    def _receive(self) -> tuple[bytes, list[int]] | None:
        try:
            message, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_REQUEST, 4)
        except ConnectionError:
            return None
        if not message:
            _close(fds)
            return None
        return message, fds

    def _refuse(self, why: str, fds: list[int], to: socket.socket | None = None) -> None:
        self._send({"error": why}, to)
        _close(fds)

    def _fork(self, message: bytes, fds: list[int]) -> Callable[[str], int] | None:
        if message.strip() != b"fork" or len(fds) != 4:
            self._refuse(f"bad request {message[:40]!r} with {len(fds)} descriptors", fds)
            return None
        threads = thread_count()
        if threads != 1:
            self._refuse(f"the zygote has {threads} threads: no fork", fds)
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as e:
            ours.close()
            theirs.close()
            self._refuse(f"fork failed: {e}", fds)
            return None
        if pid == 0:
            ours.close()
            return self._become_worker(fds, theirs)
        theirs.close()
        ours.setblocking(False)  # a stuck worker never holds up the zygote's replies
        _close(fds)
        self.children.add(pid)
        self.links.add(ours)
        self.sel.register(ours, selectors.EVENT_READ)
        self._send({"pid": pid})
        return None

    def _serve_link(self, link: socket.socket) -> Callable[[str], int] | None:
        """A worker asks for a helper; the end of its link: the worker is gone."""
        try:
            message, fds, _flags, _addr = socket.recv_fds(link, _MAX_REQUEST, 5)
        except OSError:
            message, fds = b"", []
        if not message:
            _close(fds)
            self.sel.unregister(link)
            self.links.discard(link)
            link.close()
            return None
        try:
            request = json.loads(message)
            module = request["module"]
        except (ValueError, KeyError, TypeError):
            module = None
        if module not in CHILD_MODULES or len(fds) != 5:
            self._refuse(f"bad helper request {message[:60]!r}", fds, link)
            return None
        threads = thread_count()
        if threads != 1:
            self._refuse(f"the zygote has {threads} threads: no fork", fds, link)
            return None
        try:
            pid = os.fork()
        except OSError as e:
            self._refuse(f"fork failed: {e}", fds, link)
            return None
        if pid == 0:
            return self._become_helper(module, request, fds)
        pidfd = os.pidfd_open(pid)  # before any reaping: it names this very process
        _close(fds[:4])
        self.helpers[pid] = fds[4]
        try:
            socket.send_fds(link, [json.dumps({"pid": pid}).encode()], [pidfd])
        except OSError:
            pass  # the worker is gone; its helper sees the end of its inbox
        finally:
            os.close(pidfd)
        return None

    def _shed(self) -> None:
        """In any child: nothing of the zygote's loop, links or other children stays open."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python sets it at start-up
        self.sel.close()
        self.sock.close()
        for link in self.links:
            link.close()
        _close([self.wake_r, self.wake_w, *self.helpers.values()])
        os.setsid()

    def _become_worker(self, fds: list[int], link: socket.socket) -> Callable[[str], int]:
        """In the child: shed the zygote, take the worker's stdio, then run its ``main``."""
        self._shed()
        stdin, stdout, stderr, exit_fd = fds
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.set_inheritable(exit_fd, False)
        _fresh_stdio()
        _reseed()
        link_fd = link.detach()

        def run(blas: str) -> int:
            _restore_blas(blas)
            from avatarcast.runner import worker

            code = 1
            try:
                code = worker.main(link_fd)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(exit_fd, f"{code}\n".encode())
                os.close(exit_fd)
            return code

        return run

    def _become_helper(
        self, module: str, request: dict[str, Any], fds: list[int]
    ) -> Callable[[str], int]:
        """In the child: a worker's helper, as ``python -m MODULE INBOX STATUS`` would be."""
        self._shed()
        inbox, status, stdout, stderr, exit_fd = fds
        os.close(exit_fd)  # the zygote writes the status there, not this process
        for fd in (inbox, status):
            os.set_inheritable(fd, False)  # not for what the helper runs (a TLS relay)
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        _fresh_stdio()
        _reseed()
        _lower(request.get("nice"), request.get("group_nice"))
        set_os_thread_name(module.rsplit("._", 1)[-1].replace("_", "-"))  # whep-serve in ps

        def run(blas: str) -> int:
            _restore_blas(blas)
            try:
                importlib.import_module(module).main([module, str(inbox), str(status)])
            except SystemExit as e:
                return e.code if isinstance(e.code, int) else int(e.code is not None)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            return 0

        return run

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while self.children or self.helpers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                _close(list(self.helpers.values()))
                self.helpers.clear()
                return
            if pid == 0:
                return
            exit_w = self.helpers.pop(pid, None)
            if exit_w is not None:
                with contextlib.suppress(OSError):  # its worker may be gone
                    os.write(exit_w, f"{status}\n".encode())
                os.close(exit_w)
                continue
            self.children.discard(pid)
            self._send({"exit": pid, "status": status})

    def _send(self, message: dict[str, Any], to: socket.socket | None = None) -> None:
        data = json.dumps(message).encode() + (b"\n" if to is None else b"")
        try:
            (to or self.sock).sendall(data)
        except OSError:
            pass  # the server (or worker) is gone; the next receive sees it


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _restore_blas(blas: str) -> None:
    if blas == "-":
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
    else:
        os.environ["OPENBLAS_NUM_THREADS"] = blas


def _lower(nice: object, group: object) -> None:
    """The worker's asking thread's nice, and its scheduling group's (see ``worker``)."""
    if isinstance(nice, int):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    if isinstance(group, int):
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(f"{group}\n")


def _fresh_stdio() -> None:
    """New text streams on fds 0-2: nothing the zygote buffered can leak into the worker."""
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(
        2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
    )


def _reseed() -> None:
    """Every worker would otherwise draw the zygote's random numbers: seed as a cold start
    does, from the OS (a stream's own seed still decides its programme)."""
    random.seed()
    if "numpy" in sys.modules:
        import numpy as np

        np.random.seed(int.from_bytes(os.urandom(4), "little"))


if __name__ == "__main__":
    sys.exit(main())
