"""Whether this API process has its database; losing it and getting it back are events.

In the soak a PostgreSQL restart was seen only by ``/readyz``: no event, no alert, and a
viewer's WHEP offer answered 500 meanwhile (that one is now a 503, ``control/problems``). The
watch holds one connection of its own, outside the pool, and runs ``SELECT 1`` on it every
``api.database_check_s``. A restart cuts that connection even when it is over in 0.2 s (the
soak's), long before the next check, so the next check fails: the database was lost. Then it
connects again at every check until it can: regained.

Each change is an event of kind ``database`` for every stream this process runs (``detail``:
``state`` ``down`` with the driver's ``error``, or ``recovered`` with ``down_s``), so the
tenants' webhooks that want ``database`` (or ``*``) hear of it and the events list of each
stream shows it; and ``avatarcast_database_up`` in ``/metrics``. While the database is away
the events wait in memory (``control/event_log``, and the webhook dispatcher's own queue) and
go in when it is back; webhook deliveries live in the database too, so both alerts go out
then. During the outage it is Prometheus that can tell (``AvatarcastDatabaseDown``). A
replica sees only its own streams: with two, each tells about the streams it runs, and
nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from avatarcast.control.context import AppContext
from avatarcast.control.leader import replica_id
from avatarcast.control.streaming import EXTRAS_KEY as STREAMS_KEY
from avatarcast.db.engine import make_engine
from avatarcast.runner.base import StreamEvent

__all__ = ["EVENT_KIND", "DatabaseWatch", "lifespan"]

log = logging.getLogger(__name__)
EVENT_KIND = "database"


class DatabaseWatch:
    """Checks the database on a connection of its own and calls ``on_change(up, detail)``
    when it is lost and when it is back. ``check`` blocks: call it in a thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_change: Callable[[bool, dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
        replica: str | None = None,
    ) -> None:
        self._engine = engine
        self._replica = replica or replica_id()
        self._on_change = on_change
        self._clock = clock
        self._conn: Connection | None = None
        self.up = True
        self._lost_at = 0.0
        # a check and the close take turns: cancelling ``run`` does not stop a check already in
        # its thread, and closing the connection under it crashed a test process (SIGSEGV in
        # SQLite at the app's shutdown, 2026-12-07)
        self._lock = threading.Lock()
        self._closed = False

    def check(self) -> tuple[bool, str | None]:
        """One ``SELECT 1`` (connecting first if the last one failed): up, or the error."""
        with self._lock:
            if self._closed:
                return self.up, None
            return self._check()

    def _check(self) -> tuple[bool, str | None]:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            self._conn.exec_driver_sql("SELECT 1")
            self._conn.rollback()  # no transaction stays open between checks
        except SQLAlchemyError as e:
            self._drop()
            cause = getattr(e, "orig", None) or e
            lines = str(cause).strip().splitlines()
            return False, f"{type(cause).__name__}: {lines[0] if lines else ''}"[:300]
        return True, None

    def observe(self, up: bool, error: str | None) -> None:
        """Take one check's result; a change of state is reported."""
        if up == self.up:
            return
        self.up = up
        now = self._clock()
        if not up:
            self._lost_at = now
            self._on_change(False, {"state": "down", "error": error, "replica": self._replica})
        else:
            down_s = round(now - self._lost_at, 3)
            detail = {"state": "recovered", "down_s": down_s, "replica": self._replica}
            self._on_change(True, detail)

    async def run(self, interval_s: float) -> None:
        while True:
            up, error = await asyncio.to_thread(self.check)
            self.observe(up, error)
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        """Close the watch's connection, after a check that is under way."""
        with self._lock:
            self._closed = True
            self._drop()
            self._engine.dispose()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()
            with contextlib.suppress(SQLAlchemyError):
                conn.close()


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Watch for the app's life (after the stream manager: it tells every stream)."""
    # a connection that is this watch's alone: a pooled one would be checked and replaced by
    # the pool's pre-ping, hiding the restart that cut it
    engine = make_engine(ctx.settings.database_url, poolclass=NullPool)

    def changed(up: bool, detail: dict[str, Any]) -> None:
        ctx.metrics.database_up.set(1 if up else 0)
        if up:
            log.warning("the database is back after %.1f s", detail["down_s"])
        else:
            log.error("the database cannot be reached: %s", detail["error"])
        manager = ctx.extras.get(STREAMS_KEY)
        if manager is None:
            return
        for stream_id in manager.runner.running():
            tenant_id = manager.tenant_of(stream_id)
            if tenant_id is not None:
                event = StreamEvent(
                    stream_id=stream_id, tenant_id=tenant_id, kind=EVENT_KIND, detail=dict(detail)
                )
                manager.on_event(event)
        if up:
            manager.write_held_events()

    watch = DatabaseWatch(engine, on_change=changed)
    task = asyncio.get_running_loop().create_task(
        watch.run(ctx.settings.api.database_check_s), name="database-watch"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(watch.close)
