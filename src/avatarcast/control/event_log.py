"""Stream events on their way into the database, held while it cannot take them.

The stream manager wrote each event in a job of its own, and while PostgreSQL restarted those
jobs failed and their events (a worker's crash, a glitch, the database's own ``database``
event) were gone. Now the events wait here, in order, and go in with the next write that finds
the database answering (the next event, or :meth:`HeldEvents.write` when ``control/dbwatch``
sees it back). At most ``limit`` wait; past that the oldest are dropped, and the log says how
many.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from avatarcast.db.engine import unreachable
from avatarcast.runner.base import StreamEvent

__all__ = ["HeldEvents"]

log = logging.getLogger(__name__)


class HeldEvents:
    """Events to write with ``write_batch`` (blocking: run in a thread, one batch a session).
    Used from the event loop only; :meth:`write` calls never overlap (the manager's job queue
    runs one job at a time)."""

    def __init__(
        self, write_batch: Callable[[Sequence[StreamEvent]], None], *, limit: int = 10_000
    ) -> None:
        self._write_batch = write_batch
        self._limit = limit
        self._events: deque[StreamEvent] = deque()
        self._holding = False
        self.dropped = 0

    @property
    def waiting(self) -> int:
        return len(self._events)

    def add(self, event: StreamEvent) -> None:
        self._events.append(event)

    async def write(self) -> None:
        """Write what waits. While the database cannot be reached it keeps waiting; any other
        error is a bug in what was written: logged, and that batch dropped."""
        if not self._events:
            return
        batch = list(self._events)
        try:
            await asyncio.to_thread(self._write_batch, batch)
        except Exception as e:
            if not unreachable(e):
                log.exception("%d stream events could not be written; dropped", len(batch))
                self._take(len(batch))
                return
            if not self._holding:
                why = (str(e).splitlines() or [type(e).__name__])[0]
                log.warning("the database cannot take stream events now; holding them: %s", why)
            self._holding = True
            self._trim()
            return
        self._take(len(batch))
        if self._holding:
            log.warning("the database takes stream events again: %d written", len(batch))
        self._holding = False

    def _take(self, n: int) -> None:
        for _ in range(min(n, len(self._events))):
            self._events.popleft()

    def _trim(self) -> None:
        extra = len(self._events) - self._limit
        if extra > 0:
            self._take(extra)
            self.dropped += extra
            log.error("%d stream events dropped: the database was away too long", extra)
