"""The server's side of the zygote (``runner.zygote``): start it, ask it for workers, keep it
alive.

:class:`Zygote` starts ``python -m avatarcast.runner.zygote`` (its imports run once, at the
server's start) and :meth:`Zygote.fork` hands it the three stdio pipes and an exit pipe of a
new worker; the worker is the zygote's child, and :class:`ForkedWorker` is what the local
runner supervises in its place, with the same surface as an ``asyncio`` subprocess (stdin,
stdout, stderr, ``wait``, ``send_signal``). Its exit status comes from the zygote, which reaps
it; if the zygote died first, from the exit code the worker wrote on its exit pipe (none after
a SIGKILL: then 1, a crash). Signals go through a pidfd, so a recycled pid is never signalled.

A zygote that dies is started again after 1 s, 2 s, 4 s ... (capped at 30 s); the workers it
had forked run on, since their pipes lead to the server. While it is down :meth:`fork`
returns None and the runner starts a cold worker.

With ``connect`` the zygote is not started here: ``connect`` returns a socket to one that
already runs (the Ray backend's per-node zygote, :mod:`runner.node_zygote`, which forks a
zygote of this process's own for each connection), and a lost connection is made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ForkedWorker", "Zygote"]

log = logging.getLogger(__name__)
#: the zygote's module (not imported here: ``python -m`` runs it as ``__main__``)
ZYGOTE_MODULE = "avatarcast.runner.zygote"
#: exit code of a worker whose status nobody could tell (its zygote died, and it wrote none)
UNKNOWN_EXIT = 1


class ForkedWorker:
    """A worker forked by the zygote, seen as an ``asyncio.subprocess.Process``."""

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exit_fd: int,
    ) -> None:
        self.pid = pid
        self.stdin: asyncio.StreamWriter | None = stdin
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        self.returncode: int | None = None
        self._pidfd: int | None = None
        with contextlib.suppress(ProcessLookupError):  # already gone: the zygote tells how
            self._pidfd = os.pidfd_open(pid)
        self._exit_fd = exit_fd
        self._written: int | None = None  # what the worker wrote on its exit pipe
        self._gone = False  # its exit pipe is closed: the process has ended
        self._orphan = False  # its zygote died: no status will come from there
        self._done = asyncio.Event()
        loop = asyncio.get_running_loop()
        os.set_blocking(exit_fd, False)
        loop.add_reader(exit_fd, self._read_exit)

    async def wait(self) -> int:
        await self._done.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    # --- told by the zygote, or by the exit pipe ---------------------------------------------

    def reaped(self, status: int) -> None:
        """The zygote reaped it: the true exit status (a signal as a negative code)."""
        self._finish(os.waitstatus_to_exitcode(status))

    def orphaned(self) -> None:
        """The zygote died: the exit pipe alone tells when (and, if written, how) it ends."""
        self._orphan = True
        if self._gone:
            self._finish(UNKNOWN_EXIT if self._written is None else self._written)

    def _read_exit(self) -> None:
        try:
            data = os.read(self._exit_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            with contextlib.suppress(ValueError):
                self._written = int(data.split()[0])
            return
        self._gone = True
        asyncio.get_running_loop().remove_reader(self._exit_fd)
        if self._orphan:
            self.orphaned()

    def _finish(self, code: int) -> None:
        if self.returncode is not None:
            return
        self.returncode = code
        if not self._gone:
            self._gone = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._exit_fd)
        with contextlib.suppress(OSError):
            os.close(self._exit_fd)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._done.set()


class Zygote:
    """One zygote process for this server, started again when it dies."""

    def __init__(
        self,
        python: str = sys.executable,
        *,
        backoff: tuple[float, float] = (1.0, 30.0),
        connect: Callable[[], Awaitable[socket.socket]] | None = None,
    ) -> None:
        self._python = python
        self._connect = connect
        self._backoff = backoff
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._sock: socket.socket | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self._workers: dict[int, ForkedWorker] = {}
        #: exit reports read before the fork's caller took its worker: pid -> wait status
        self._early: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: times the zygote was started (1 at first, +1 per respawn)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        """Start it (and keep it started) in a task this object owns until :meth:`close`."""
        if self._task is None and not self._closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # made outside a loop: started on the first fork
                return
            self._task = loop.create_task(self._keep(), name="zygote")

    async def fork(self, *, wait_s: float = 30.0) -> ForkedWorker | None:
        """A new worker, or None when the zygote is down or cannot fork (start a cold one)."""
        self.start()
        if self._closed or self._task is None or self._task.done():
            return None
        if not self._ready.is_set():
            try:  # it is importing: still sooner than a cold worker's own imports
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except TimeoutError:
                return None
        async with self._lock:
            return await self._fork_once()

    async def close(self) -> None:
        """Stop the zygote; workers it forked run on (the runner stops them)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- inside ------------------------------------------------------------------------------

    async def _fork_once(self) -> ForkedWorker | None:
        writer, sock = self._writer, self._sock
        if writer is None or sock is None or not self._ready.is_set():
            return None
        loop = asyncio.get_running_loop()
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        self._reply = loop.create_future()
        try:
            socket.send_fds(sock, [b"fork\n"], [in_r, out_w, err_w, exit_w])
            reply = await asyncio.wait_for(self._reply, 10.0)
        except (OSError, TimeoutError) as e:
            log.warning("the zygote did not fork: %s", e)
            reply = {}
        finally:
            self._reply = None
            for fd in (in_r, out_w, err_w, exit_w):
                os.close(fd)
        pid = reply.get("pid")
        if not isinstance(pid, int):
            for fd in (in_w, out_r, err_r, exit_r):
                os.close(fd)
            if "error" in reply:
                log.warning("the zygote refused to fork: %s", reply["error"])
            return None
        stdin = await _writer_of(in_w)
        stdout, stderr = await _reader_of(out_r), await _reader_of(err_r)
        worker = ForkedWorker(pid, stdin, stdout, stderr, exit_r)
        if pid in self._early:
            worker.reaped(self._early.pop(pid))
        elif self._writer is None:  # the zygote died meanwhile
            worker.orphaned()
        else:
            self._workers[pid] = worker
        return worker

    async def _keep(self) -> None:
        failures = 0
        while not self._closed:
            began = asyncio.get_running_loop().time()
            try:
                await self._run_once()
            except OSError as e:
                log.warning("cannot start the zygote: %s", e)
            if self._closed:
                return
            if asyncio.get_running_loop().time() - began > 60:
                failures = 0
            delay = min(self._backoff[0] * 2**failures, self._backoff[1])
            failures += 1
            log.warning("the zygote ended; starting it again in %.0f s", delay)
            await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        if self._connect is not None:
            await self._run_connected(self._connect)
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # no BLAS threads: fork-safe
        blas = os.environ.get("OPENBLAS_NUM_THREADS", "-")
        try:
            proc = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                ZYGOTE_MODULE,
                str(theirs.fileno()),
                blas,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches the server only
            )
        finally:
            theirs.close()
        self.starts += 1
        self._proc, self._sock = proc, ours
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
            await self._listen(self._reader)
        finally:
            importing = not self._ready.is_set()
            self._ready.clear()
            if importing and self._closed and proc.returncode is None:
                # closed before it was ready: it has forked nothing, and it would notice the
                # closed socket only after its imports (~0.8 CPU s, 0.7-1 s; every test app
                # closed within a second of its start waited that long)
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            await self._end(proc)

    async def _run_connected(self, connect: Callable[[], Awaitable[socket.socket]]) -> None:
        """Serve a zygote that runs elsewhere, through the socket ``connect`` returns."""
        ours = await connect()
        self.starts += 1
        self._sock = ours
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
            await self._listen(self._reader)
        finally:
            self._ready.clear()
            await self._end(None)

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Replies and exit reports, in the order the zygote sent them, until it hangs up."""
        while line := await reader.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "ready" in msg:
                log.info("zygote %s ready", msg["ready"])
                self._ready.set()
            elif "exit" in msg:
                pid, status = int(msg["exit"]), int(msg["status"])
                worker = self._workers.pop(pid, None)
                if worker is not None:
                    worker.reaped(status)
                else:
                    self._early[pid] = status
            elif self._reply is not None and not self._reply.done():
                self._reply.set_result(msg)

    async def _end(self, proc: asyncio.subprocess.Process | None) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = self._reader = None
        self._sock = None
        if self._reply is not None and not self._reply.done():
            self._reply.set_result({"error": "the zygote ended"})
        if proc is not None and proc.returncode is None:  # the server closes its socket end
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._early.clear()
        workers, self._workers = self._workers, {}
        for worker in workers.values():
            worker.orphaned()


async def _writer_of(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(fd, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def _reader_of(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    return reader
