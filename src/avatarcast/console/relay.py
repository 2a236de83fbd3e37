"""The console's events across API replicas on one PostgreSQL: ``LISTEN``/``NOTIFY``.

A stream runs in one replica (the holder of its lease), but a supervisor's browser may be
connected to any replica behind the proxy. Every event the local bus publishes is also sent
as a ``NOTIFY`` on one channel; every replica listens and publishes what others sent on its
own bus, so each tab sees every stream of its tenant, wherever it runs. Notifications are
delivered only to sessions listening at the time, in commit order per sender, and at most
8000 bytes each (PostgreSQL's limit): a larger event goes out with its ``kind`` and
``truncated: true``, and the tab reloads that panel. Event ids stay per replica, so a tab that
reconnects to another replica starts from that replica's newest event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from avatarcast.console.bus import BusEvent, EventBus

log = logging.getLogger(__name__)

CHANNEL = "avatarcast_console"
#: PostgreSQL refuses a payload of 8000 bytes or more; leave room for the envelope.
MAX_PAYLOAD = 7900
RETRY_S = (0.5, 1.0, 2.0, 5.0)


def conninfo(database_url: str) -> str:
    """A libpq URL from SQLAlchemy's (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def encode(origin: str, event: BusEvent) -> str:
    """The notification's payload; an event too big for one is cut to its kind."""
    body = {"o": origin, "t": event.tenant_id, "s": event.stream_id, "n": event.name}
    text = json.dumps({**body, "d": event.data}, separators=(",", ":"), default=str)
    if len(text.encode()) < MAX_PAYLOAD:
        return text
    small = {"kind": event.data.get("kind"), "truncated": True}
    return json.dumps({**body, "d": small}, separators=(",", ":"))


class ConsoleRelay:
    """Sends this replica's bus events and publishes the other replicas' on it."""

    def __init__(self, bus: EventBus, *, database_url: str, origin: str) -> None:
        self.bus = bus
        self.origin = origin
        self._conninfo = conninfo(database_url)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0

    def forward(self, event: BusEvent) -> None:
        """The bus's hook for a local event; thread-safe, never blocks the publisher."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._enqueue, encode(self.origin, event))

    def _enqueue(self, payload: str) -> None:
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:  # the database is away for long: the newest are dropped
            self.dropped += 1

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Listen and send until cancelled; reconnect with backoff when the database goes."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while True:
            try:
                await self._session(ready)
            except (psycopg.Error, OSError) as e:
                delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
                failures += 1
                log.warning("console relay: %s; again in %.1f s", type(e).__name__, delay)
                await asyncio.sleep(delay)

    async def _session(self, ready: asyncio.Event | None) -> None:
        async with (
            await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as listen,
            await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as send,
        ):
            await listen.execute(f"LISTEN {CHANNEL}")
            if ready is not None:
                ready.set()
            tasks = [
                asyncio.create_task(self._send(send)),
                asyncio.create_task(self._listen(listen)),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # the connection's error: start over
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Send the outbox (an event taken while the database is away is lost: the tabs of
        other replicas miss it, their health rows still show the state)."""
        while True:
            payload = await self._outbox.get()
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async for note in conn.notifies():
            self._receive(note.payload)

    def _receive(self, payload: str) -> None:
        try:
            note: Mapping[str, Any] = json.loads(payload)
            if note["o"] == self.origin:
                return
            self.bus.publish(note["t"], note["s"], note["n"], note["d"], relayed=True)
        except (ValueError, KeyError, TypeError):
            log.warning("console relay: a notification that is not an event was ignored")
