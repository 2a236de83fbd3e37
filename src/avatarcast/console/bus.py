"""The console's in-process event bus: what the stream runner reports, numbered for SSE.

The stream manager's listeners (transcript lines, refusals, worker state changes, supervision
actions) and the console's own routes (chat fates, pending answers) publish here; each browser
tab's Server-Sent Events connection reads what came after the last id it saw, so a tab that
reconnects with ``Last-Event-ID`` misses nothing still held (the last ``keep`` events).
Publishing is thread-safe: routes that run in the threadpool publish too.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from avatarcast.runner.base import StreamEvent

__all__ = ["ALERT_KINDS", "BusEvent", "EventBus"]

#: Runner and supervision events a person must see at once (they go to role=alert).
ALERT_KINDS = frozenset({"crashed", "failed", "restarted", "safe_mode_entered", "stop"})


@dataclass(frozen=True, slots=True)
class BusEvent:
    id: int
    tenant_id: str
    stream_id: str
    #: the SSE event name: line, refusal, event, alert, chat, chat_blocked, answers
    name: str
    data: Mapping[str, Any]


class EventBus:
    def __init__(self, *, keep: int = 5000) -> None:
        self._events: deque[BusEvent] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._forward: Callable[[BusEvent], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that SSE connections wait on (set by the console's lifespan)."""
        self._loop = loop
        self._changed = asyncio.Event()

    def forward_to(self, forward: Callable[[BusEvent], None]) -> None:
        """Also hand each event published here (not relayed) to ``forward``: the relay to
        the other API replicas (``console.relay``)."""
        self._forward = forward

    @property
    def last_id(self) -> int:
        with self._lock:
            return self._events[-1].id if self._events else 0

    def publish(
        self,
        tenant_id: str,
        stream_id: str,
        name: str,
        data: Mapping[str, Any],
        *,
        relayed: bool = False,
    ) -> BusEvent:
        """``relayed``: the event came from another replica, so it is not sent on again."""
        with self._lock:
            event = BusEvent(next(self._ids), tenant_id, stream_id, name, dict(data))
            self._events.append(event)
        forward = self._forward
        if forward is not None and not relayed:
            forward(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._wake()
            else:
                loop.call_soon_threadsafe(self._wake)
        return event

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def after(self, tenant_id: str, last_id: int) -> list[BusEvent]:
        """The tenant's events with an id above ``last_id``, oldest first."""
        with self._lock:
            return [e for e in self._events if e.id > last_id and e.tenant_id == tenant_id]

    async def wait(self, at_most_s: float) -> None:
        """Until something is published or ``at_most_s`` pass."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), at_most_s)
        except TimeoutError:
            pass

    def on_stream_event(self, event: StreamEvent) -> None:
        """The stream manager's listener: sort a runner event into the console's names."""
        d = dict(event.detail)
        if event.kind in ("line", "refusal", "chat", "chat_blocked", "answers"):
            name = event.kind
        elif event.kind in ALERT_KINDS:
            name = "alert"
        else:
            name = "event"
        self.publish(event.tenant_id, event.stream_id, name, {"kind": event.kind, **d})
