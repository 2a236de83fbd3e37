"""Worker processes for the local runner, and one kept ready.

Starting a worker costs its imports first (numpy, PyAV, scipy, the pipeline: about 1.2 s of
CPU, 3-4 s of wall time on a loaded 2-core machine) before it reads its spec. With
``keep=True`` one worker waits with that done, blocked on its stdin, and the next start or
restart takes it: a SIGKILLed stream is back on air that much sooner. A new spare is made
``delay`` seconds later, so its imports do not compete with the stream just starting. A
spare whose parent dies sees the end of stdin and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from avatarcast.runner.forked import Zygote

__all__ = ["WorkerProcess", "Workers"]

log = logging.getLogger(__name__)
_WORKER = ("-m", "avatarcast.runner.worker")


class WorkerProcess(Protocol):
    """What the runner uses of a worker: an ``asyncio`` subprocess, or a forked worker."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdin(self) -> asyncio.StreamWriter | None: ...
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    @property
    def stderr(self) -> asyncio.StreamReader | None: ...
    async def wait(self) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class Workers:
    def __init__(
        self,
        python: str,
        *,
        keep: bool = False,
        delay: float = 5.0,
        zygote: bool = False,
        zygote_connect: Callable[[], Awaitable[socket.socket]] | None = None,
    ) -> None:
        """``zygote_connect``: the zygote runs elsewhere (see :class:`Zygote`'s ``connect``)."""
        self._python = python
        self._zygote = Zygote(python, connect=zygote_connect) if zygote else None
        if self._zygote is not None:
            self._zygote.start()
        self._keep = keep
        self._delay = delay
        self._spare: asyncio.subprocess.Process | None = None
        self._making: asyncio.Task[None] | None = None

    @property
    def zygote(self) -> Zygote | None:
        return self._zygote

    async def get(self) -> tuple[WorkerProcess, bool]:
        """A worker for a stream, and whether it is the spare (then another is made later)."""
        if self._zygote is not None:
            forked = await self._zygote.fork()
            if forked is not None:
                return forked, False
        spare, self._spare = self._spare, None
        proc: WorkerProcess
        if spare is not None and spare.returncode is None:
            proc, was_spare = spare, True
        else:
            proc, was_spare = await self.spawn(), False
        self._replenish()
        return proc, was_spare

    async def spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self._python,
            *_WORKER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal reaches the parent, not the workers
        )

    async def close(self) -> None:
        """No more spares; the waiting one exits (end of input before a spec)."""
        self._keep = False
        if self._making is not None:
            self._making.cancel()
        spare, self._spare = self._spare, None
        if spare is not None and spare.returncode is None:
            assert spare.stdin is not None
            spare.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spare.wait(), 5.0)

    async def shutdown(self) -> None:
        """After the streams stopped: the spare and the zygote end (its workers have)."""
        await self.close()
        if self._zygote is not None:
            await self._zygote.close()

    def _replenish(self) -> None:
        busy = self._making is not None and not self._making.done()
        if self._keep and not busy and self._spare is None:
            self._making = asyncio.get_running_loop().create_task(self._make(), name="spare")

    async def _make(self) -> None:
        await asyncio.sleep(self._delay)
        if self._keep and self._spare is None:
            try:
                self._spare = await self.spawn()
            except OSError as e:
                log.warning("no spare worker: %s", e)
