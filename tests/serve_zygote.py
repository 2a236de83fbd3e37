"""``avatarcast serve`` forked from a process that has imported it once: the tests' zygote.

A cold ``serve`` spends ~3 of its ~3.8 CPU s to ready importing FastAPI, SQLAlchemy, Alembic,
pydantic and its ~120 routes' modules (``-X importtime``), and the suite starts ~35 of them
(``tests/served.py``). Here one process per test process imports all of that once, and every
server after the first is a ``fork`` of it that runs ``avatarcast.cli``'s Typer app with the
server's own arguments, environment, working folder and log file: the same code an exec'd
``python -m avatarcast.cli serve`` runs, minus the imports (benchmarks/README.md "Test suite").

:meth:`ServeZygote.start` returns a :class:`ForkedServe`, which has the parts of
``subprocess.Popen`` the tests use (``pid``, ``poll``, ``wait`` with ``TimeoutExpired``,
``send_signal``, ``kill``, ``terminate``, ``returncode``). The server is the zygote's child, not
the test's, so the zygote reaps it and writes its exit code (``Popen``'s convention: ``-N``
for signal N) on a pipe the test process handed over with the request; signals go through a
pidfd. Fork safety: the zygote runs no thread but its own (OpenBLAS is imported with one
thread, checked before every fork); in the child the zygote's sockets and pipes are closed,
signal handlers are the defaults again and the random generator is reseeded. Setting
``AVATARCAST_TEST_COLD_SERVE=1`` starts every server with a plain exec instead.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

__all__ = ["ForkedServe", "ServeZygote", "cold_serve", "zygote"]

_MAX_MESSAGE = 1 << 20
#: returncode of a server whose status nobody could tell (the zygote died before reaping it)
UNKNOWN_EXIT = 1


def cold_serve() -> bool:
    """Whether servers start with a plain exec (``AVATARCAST_TEST_COLD_SERVE=1``)."""
    return os.environ.get("AVATARCAST_TEST_COLD_SERVE", "") not in ("", "0")


class ForkedServe:
    """A server forked by the zygote, seen as a ``subprocess.Popen``."""

    def __init__(self, pid: int, status_fd: int, args: Sequence[str]) -> None:
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None
        self._status_fd = status_fd
        self._pidfd: int | None = None
        with contextlib.suppress(ProcessLookupError):  # gone already: the status tells how
            self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        return self._collect(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def _collect(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        ready, _, _ = select.select([self._status_fd], [], [], timeout)
        if not ready:
            return None
        text = b""
        while chunk := os.read(self._status_fd, 64):
            text += chunk
        os.close(self._status_fd)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.returncode = int(text) if text.strip() else UNKNOWN_EXIT
        return self.returncode


class ServeZygote:
    """The test process's side: start the zygote, ask it for servers."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # no BLAS threads: fork-safe
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._sock = ours

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
    ) -> ForkedServe:
        """``avatarcast ARGV`` in ``cwd`` with exactly ``env``, stdout and stderr to ``log``."""
        request = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "log": str(log)}
        status_r, status_w = os.pipe()
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], [status_w])
        finally:
            os.close(status_w)
        answer = json.loads(self._sock.recv(_MAX_MESSAGE) or b'{"error": "the zygote is gone"}')
        if "pid" not in answer:
            os.close(status_r)
            raise RuntimeError(f"the serve zygote could not fork: {answer['error']}")
        return ForkedServe(answer["pid"], status_r, ["avatarcast", *argv])

    def close(self) -> None:
        """End of the socket: the zygote exits (its servers were stopped by their tests)."""
        self._sock.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@cache
def zygote() -> ServeZygote:
    """This process's zygote, started at the first server and ended at exit."""
    made = ServeZygote()
    atexit.register(made.close)
    return made


# --- the zygote process


def _preload() -> None:
    """Import what ``serve`` imports before it answers ``/readyz``: the CLI, the app and its
    routes (``create_app`` imports those: ~150 modules, aiortc's among them), the SQLite
    driver, uvicorn with the protocols ``Config.load`` picks."""
    import sqlite3  # noqa: F401

    import uvicorn

    import avatarcast.cli
    import avatarcast.control.lifecycle
    import avatarcast.server  # noqa: F401
    from avatarcast.control.app import load_route_modules

    load_route_modules()

    async def nothing(scope: object, receive: object, send: object) -> None:
        return None

    uvicorn.Config(nothing, log_config=None, lifespan="on").load()


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _child(request: dict[str, object], keep_closed: list[int]) -> None:
    """In the forked server: undo what the zygote set up, then run the CLI; never returns."""
    for fd in keep_closed:
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    random.seed()
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    argv = request["argv"]
    assert isinstance(argv, list)
    sys.argv = ["avatarcast", *argv]
    from avatarcast.cli import app

    app(args=argv, prog_name="avatarcast")  # Typer exits (SystemExit) with the code
    raise SystemExit(0)


def _serve_forever(sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    status_fds: dict[int, int] = {}  # pid -> the write end of its status pipe
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 512)
            _reap(status_fds)
        if sock not in ready:
            continue
        message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 1)
        if not message:
            return  # the test process is gone
        status_w = fds[0]
        if _threads() != 1:
            os.close(status_w)
            error = f"the zygote runs {_threads()} threads: a fork could inherit a held lock"
            sock.send(json.dumps({"error": error}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            keep_closed = [sock.fileno(), wake_r, wake_w, status_w, *status_fds.values()]
            _child(json.loads(message), keep_closed)
        status_fds[pid] = status_w
        sock.send(json.dumps({"pid": pid}).encode())
        _reap(status_fds)


def _reap(status_fds: dict[int, int]) -> None:
    while status_fds:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = status_fds.pop(pid, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
            os.close(fd)


def main() -> None:
    del sys.path[0]  # this file's folder (tests/): not on a real server's path
    sock = socket.socket(fileno=int(sys.argv[1]))
    _preload()
    _serve_forever(sock)


if __name__ == "__main__":
    main()
