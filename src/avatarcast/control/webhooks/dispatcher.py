"""Delivery off the request path and off the frame loop.

The stream manager calls :meth:`WebhookDispatcher.on_event` on the event loop with every
stream event; it only appends to a list and wakes :meth:`run`. ``run`` writes a pending
delivery per interested webhook to the database (so a restart loses none), then sends what
is due, a few at a time, each in a worker thread: a receiver that hangs holds one thread for
``timeout_s`` and nothing else. A failed attempt is tried again after 2 s, 4 s, 8 s ... (capped);
after ``max_attempts`` the delivery is ``dead`` and shows on the dead-letter list
(``GET /v1/webhooks/dead-letters``) until someone re-sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from avatarcast.control.context import AppContext
from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.streaming import EVENT_LISTENERS_KEY
from avatarcast.control.webhooks import sender, store
from avatarcast.control.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    body_of,
    sign,
)
from avatarcast.db.base import utcnow
from avatarcast.netpolicy import NetPolicy
from avatarcast.runner.base import StreamEvent
from avatarcast.settings import WebhookSettings

__all__ = ["EXTRAS_KEY", "WebhookDispatcher", "lifespan"]

log = logging.getLogger(__name__)
EXTRAS_KEY = "webhooks"
#: deliveries in flight at once
_PARALLEL = 8
#: deliveries claimed per round
_BATCH = 64
#: delivered rows older than ``keep_delivered_s`` are deleted this often
_PRUNE_EVERY_S = 3600.0
#: events held in memory while the database cannot take them (the newest are kept)
_MAX_HELD = 10_000


class WebhookDispatcher:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        open_secret: Callable[[str], str],
        policy: NetPolicy,
        options: WebhookSettings,
        ca_file: str | None = None,
        metrics: ControlMetrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.open_secret = open_secret
        self.policy = policy
        self.options = options
        self.ca_file = ca_file
        self.metrics = metrics
        self._events: list[dict[str, Any]] = []
        self._wake = asyncio.Event()

    @property
    def queued(self) -> int:
        """Events not yet written as deliveries."""
        return len(self._events)

    def on_event(self, event: StreamEvent) -> None:
        """A stream event (on the event loop): queue it and return at once."""
        if event.kind in store.UNSENT_KINDS:
            return
        self._events.append(
            {
                "id": uuid.uuid4().hex,
                "kind": event.kind,
                "tenant_id": event.tenant_id,
                "stream_id": event.stream_id,
                "time": utcnow().isoformat(),
                "detail": dict(event.detail),
            }
        )
        self._wake.set()

    async def run(self) -> None:
        """Queue and send, forever (cancelled at shutdown; what is pending stays queued)."""
        pruned_at = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_s)
            self._wake.clear()
            try:
                await self.flush()
                await self.send_due()
                if time.monotonic() - pruned_at > _PRUNE_EVERY_S:
                    pruned_at = time.monotonic()
                    keep = self.options.keep_delivered_s
                    await asyncio.to_thread(store.prune, self.sessions, keep_s=keep)
            except Exception:
                log.exception("webhook delivery round failed")

    async def flush(self) -> None:
        """Write the queued events as pending deliveries (kept for the next round when the
        database cannot take them now)."""
        events, self._events = self._events, []
        if not events:
            return
        try:
            await asyncio.to_thread(store.enqueue, self.sessions, events)
        except Exception:
            self._events[:0] = events
            del self._events[:-_MAX_HELD]
            raise

    async def send_due(self) -> int:
        due = await asyncio.to_thread(
            store.due, self.sessions, self.open_secret, limit=_BATCH, lease_s=self._lease_s()
        )
        gate = asyncio.Semaphore(_PARALLEL)

        async def one(d: store.Due) -> None:
            async with gate:
                await self._attempt(d)

        async with asyncio.TaskGroup() as tg:
            for d in due:
                tg.create_task(one(d))
        return len(due)

    def _lease_s(self) -> float:
        """How long a claimed delivery is this process's: the whole batch's attempts, a few at
        a time, each up to ``timeout_s``, and a margin (then another replica may send it)."""
        rounds = -(-_BATCH // _PARALLEL) + 1
        return rounds * self.options.timeout_s + 30.0

    async def _attempt(self, d: store.Due) -> None:
        stamp = int(time.time())
        body = body_of({**d.payload, "delivery_id": d.id, "attempt": d.attempts + 1}, stamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "avatarcast-webhooks/1",
            SIGNATURE_HEADER: sign(d.secret, body),
            TIMESTAMP_HEADER: str(stamp),
            EVENT_HEADER: d.kind,
            DELIVERY_HEADER: str(d.id),
        }
        outcome = await asyncio.to_thread(
            sender.post,
            d.url,
            body,
            headers,
            policy=self.policy,
            timeout_s=self.options.timeout_s,
            ca_file=self.ca_file,
        )
        o = self.options
        result = await asyncio.to_thread(
            store.record,
            self.sessions,
            d.id,
            outcome,
            max_attempts=o.max_attempts,
            start_s=o.backoff_start_s,
            cap_s=o.backoff_cap_s,
        )
        if result is None:
            return
        if result.status != "delivered":
            log.warning(
                "webhook %s delivery %s (%s) attempt %s failed: %s; now %s",
                d.webhook_id,
                d.id,
                d.kind,
                d.attempts + 1,
                outcome.status or outcome.error,
                result.status,
            )
        if self.metrics is not None:
            outcome_label = "retry" if result.status == "pending" else result.status
            self.metrics.webhook_deliveries.labels(outcome_label).inc()


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Run the dispatcher for the app's life; the stream manager tells it every event
    (``streaming.EVENT_LISTENERS_KEY``: registered before the runner starts)."""
    settings = ctx.settings
    ca = settings.tls.ca_file
    dispatcher = WebhookDispatcher(
        sessions=ctx.sessions,
        open_secret=ctx.secrets.open,
        policy=settings.api.net_policy(),
        options=settings.webhooks,
        ca_file=str(ca.resolve()) if ca else None,
        metrics=ctx.metrics,
    )
    ctx.extras[EXTRAS_KEY] = dispatcher
    ctx.extras.setdefault(EVENT_LISTENERS_KEY, []).append(dispatcher.on_event)
    task = asyncio.get_running_loop().create_task(dispatcher.run(), name="webhooks")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await dispatcher.flush()  # the streams' last events (stopped), sent after a restart
