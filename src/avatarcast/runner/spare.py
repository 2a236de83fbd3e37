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

__all__ = ["Workers"]

log = logging.getLogger(__name__)
_WORKER = ("-m", "avatarcast.runner.worker")


class Workers:
    def __init__(self, python: str, *, keep: bool = False, delay: float = 5.0) -> None:
        self._python = python
        self._keep = keep
        self._delay = delay
        self._spare: asyncio.subprocess.Process | None = None
        self._making: asyncio.Task[None] | None = None

    async def get(self) -> tuple[asyncio.subprocess.Process, bool]:
        """A worker for a stream, and whether it is the spare (then another is made later)."""
        spare, self._spare = self._spare, None
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
