"""One zygote per Ray node, outliving the stream actors: ``python -m
avatarcast.runner.node_zygote SOCKET WATCH_PID BLAS``.

A stream actor's own zygote (:mod:`runner.zygote`) would die with the actor, and the actor
Ray starts in its place would import the pipeline again (seconds of CPU) before its stream is
back on air. This process does those imports once per node and listens on the Unix socket
``SOCKET``; for each connection (an actor's :class:`~avatarcast.runner.forked.Zygote` with
``connect``) it forks a child that becomes an ordinary zygote serving that connection alone,
with the imports already in place: a replacement actor's first worker is a fork away.

When an actor dies, its connection ends: its zygote exits and its workers see the end of
their stdin, as with a server that dies. This process exits when ``WATCH_PID`` (the node's
raylet, the actors' parent) does, so it never outlives its node. A second one started for
the same ``SOCKET`` while one answers there exits at once (:func:`ensure` starts it
detached: it is no child of the actor that started it, and a SIGKILL of that actor leaves
it be).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["connect", "ensure", "main"]

MODULE = "avatarcast.runner.node_zygote"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, watch, blas = Path(args[0]), int(args[1]), args[2]
    listener = _listen(path)
    if listener is None:
        return 0  # another one serves this node
    from avatarcast.runner import zygote

    zygote.preload()
    gc.collect()
    gc.freeze()
    child = _serve(listener, path, watch)
    if child is None:
        return 0
    return child(blas)


def _listen(path: Path) -> socket.socket | None:
    """The listening socket at ``path``, or None when a live one answers there already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f"{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
                return None
            except OSError:
                pass
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(64)
        return listener


def _serve(listener: socket.socket, path: Path, watch: int) -> Callable[[str], int] | None:
    """Fork a zygote per connection until ``watch`` ends (None); in a forked child, return
    what the child runs (the loop's stack unwinds first)."""
    try:
        watched = os.pidfd_open(watch)
    except ProcessLookupError:
        return None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(watched, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    child = False
    try:
        while True:
            for key, _ in sel.select():
                if key.fileobj == watched:
                    return None
                if key.fileobj == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 512):
                            pass
                    continue
                conn, _ = listener.accept()
                if os.fork() == 0:  # one thread only: nothing else here runs threads
                    child = True
                    sel.close()
                    for fd in (watched, wake_r, wake_w):
                        os.close(fd)
                    listener.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    return _zygote_of(conn)
                conn.close()
            _reap()
    finally:
        if not child:  # the node is gone: so is its socket
            with contextlib.suppress(OSError):
                path.unlink()


def _zygote_of(conn: socket.socket) -> Callable[[str], int]:
    def run(blas: str) -> int:
        from avatarcast.runner import zygote

        return zygote.main([str(conn.detach()), blas])

    return run


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def ensure(path: Path, watch: int, python: str = sys.executable) -> None:
    """Start the node's zygote detached (its parent exits at once), unless one answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
            return
        except OSError:
            pass
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # no BLAS threads: fork-safe
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "-")
    launcher = (
        "import os,sys\n"
        "if os.fork(): os._exit(0)\n"
        "os.setsid()\n"
        f"os.execv(sys.executable, [sys.executable, '-m', {MODULE!r}] + sys.argv[1:])\n"
    )
    subprocess.run(
        [python, "-c", launcher, str(path), str(watch), blas],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        close_fds=True,
        check=False,
        timeout=30,
    )


async def connect(path: Path, watch: int, *, wait_s: float = 30.0) -> socket.socket:
    """A connection to the node's zygote at ``path``, started first if none answers."""
    await asyncio.to_thread(ensure, path, watch)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            sock.setblocking(False)
            return sock
        except OSError:
            sock.close()
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
