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

End of the socket means the server is gone: the zygote exits, and its workers, which see the
end of their stdin, stop as they would have. What a worker must not inherit is undone in the
child before the worker's own ``main`` runs: the socket and the wake-up pipe are closed, signal
handlers are the defaults again, the random generators are reseeded from the OS, it starts a
session of its own (as ``start_new_session`` does for a cold one), and ``BLAS`` (the server's
``OPENBLAS_NUM_THREADS``, ``-`` if it had none) is restored in its environment. The zygote
runs OpenBLAS without threads (``OPENBLAS_NUM_THREADS=1`` from the server), and before every
fork checks that it has no thread but its own; otherwise it answers with an error and forks
nothing (a lock held by another thread would be held for ever in the child).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

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
    import avatarcast.output.encoder  # imported on the first frame
    import avatarcast.pipeline.live
    import avatarcast.runner.worker
    import avatarcast.voice.espeak  # noqa: F401  the offline voice
    from avatarcast.chat.moderation import Moderator

    with contextlib.suppress(Exception):  # a worker reports a broken lexicon itself
        Moderator()  # compiles the lexicons' patterns into ``re``'s cache: 0.13 s per start


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    blas = args[1] if len(args) > 1 else "-"
    preload()
    gc.collect()
    gc.freeze()  # what is loaded now stays shared: the workers' collectors never touch it
    child = _Zygote(sock).serve()
    if child is None:
        return 0
    return child(blas)


class _Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.children: set[int] = set()

    def serve(self) -> Callable[[str], int] | None:
        """Answer requests until the server hangs up (None); in a forked child, return what
        the child runs (the caller's stack unwinds first, so nothing of the loop remains)."""
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector via wake_w
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self.wake_r, selectors.EVENT_READ)
        self._send({"ready": os.getpid()})
        while True:
            for key, _ in sel.select():
                if key.fileobj == self.wake_r:
                    self._drain_wakeups()
                    continue
                request = self._receive()
                if request is None:
                    return None
                message, fds = request
                child = self._fork(message, fds)
                if child is not None:
                    sel.close()
                    return child
            self._reap()

    def _receive(self) -> tuple[bytes, list[int]] | None:
        try:
            message, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_REQUEST, 4)
        except ConnectionError:
            return None
        if not message:
            for fd in fds:
                os.close(fd)
            return None
        return message, fds

    def _fork(self, message: bytes, fds: list[int]) -> Callable[[str], int] | None:
        if message.strip() != b"fork" or len(fds) != 4:
            self._send({"error": f"bad request {message[:40]!r} with {len(fds)} descriptors"})
            for fd in fds:
                os.close(fd)
            return None
        threads = thread_count()
        if threads != 1:
            self._send({"error": f"the zygote has {threads} threads: no fork"})
            for fd in fds:
                os.close(fd)
            return None
        pid = os.fork()
        if pid == 0:
            return self._become_worker(fds)
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self._send({"pid": pid})
        return None

    def _become_worker(self, fds: list[int]) -> Callable[[str], int]:
        """In the child: shed the zygote, take the worker's stdio, then run its ``main``."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python sets it at start-up
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.setsid()
        stdin, stdout, stderr, exit_fd = fds
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.set_inheritable(exit_fd, False)
        _fresh_stdio()
        _reseed()

        def run(blas: str) -> int:
            if blas == "-":
                os.environ.pop("OPENBLAS_NUM_THREADS", None)
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = blas
            from avatarcast.runner import worker

            code = 1
            try:
                code = worker.main()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(exit_fd, f"{code}\n".encode())
                os.close(exit_fd)
            return code

        return run

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self._send({"exit": pid, "status": status})

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the server is gone; the next receive sees it


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
