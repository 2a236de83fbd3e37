"""Later chat fates: a message answered "pending" is asked about until it settles.

A chat post answers with each message's fate at that moment; a question the desk is still
writing an answer for, or whose answer waits for a supervisor's approval, is ``pending``
then. The worker keeps the later fate (``answered``, ``merged``, ``rejected``) in its ledger
and tells it when asked (``{"cmd": "chat_fate"}``), so this watch asks, once a second, about
the pending messages of streams on air, and publishes a ``chat`` event on the console's bus
when one settles (the chat panel replaces the message's line). Bounded and cheap: at most
``limit`` messages are followed (the oldest dropped first), each for at most ``keep_s``, and
one round asks about at most ``per_round`` of them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from avatarcast.console.bus import EventBus
from avatarcast.runner.base import CommandFailed, StreamEvent

__all__ = ["FateWatch"]

log = logging.getLogger(__name__)

Request = Callable[..., Awaitable[Any]]
#: a stream that ended or lost its worker forgets its ledger: stop asking about its messages
_GONE = frozenset({"stopped", "failed", "crashed"})


@dataclass(slots=True)
class _Pending:
    tenant_id: str
    stream_id: str
    message_id: str
    since: float


class FateWatch:
    def __init__(
        self,
        *,
        bus: EventBus,
        request: Request,
        limit: int = 500,
        per_round: int = 50,
        keep_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``request(stream_id, command, wait_s=...)`` is the runner's question to a worker."""
        self._bus, self._request = bus, request
        self.limit, self.per_round, self.keep_s = limit, per_round, keep_s
        self._clock = clock
        self._pending: OrderedDict[tuple[str, str], _Pending] = OrderedDict()
        self._lock = threading.Lock()  # chat routes tell from the threadpool

    @property
    def following(self) -> int:
        return len(self._pending)

    def on_stream_event(self, event: StreamEvent) -> None:
        """The stream manager's listener: follow pending fates, forget ended streams."""
        with self._lock:
            self._on_event(event)

    def _on_event(self, event: StreamEvent) -> None:
        if event.kind == "chat":
            for fate in event.detail.get("fates") or ():
                if isinstance(fate, Mapping) and fate.get("outcome") == "pending":
                    self._follow(event.tenant_id, event.stream_id, str(fate.get("id", "")))
        elif event.kind == "chat_blocked":
            self._pending.pop((event.stream_id, str(event.detail.get("message_id", ""))), None)
        elif event.kind in _GONE:
            for key in [k for k in self._pending if k[0] == event.stream_id]:
                del self._pending[key]

    def _follow(self, tenant_id: str, stream_id: str, message_id: str) -> None:
        if not message_id:
            return
        key = (stream_id, message_id)
        self._pending[key] = _Pending(tenant_id, stream_id, message_id, self._clock())
        self._pending.move_to_end(key)
        while len(self._pending) > self.limit:
            self._pending.popitem(last=False)

    async def check(self) -> int:
        """One round: ask about the oldest pending messages; returns how many settled."""
        now, settled = self._clock(), 0
        with self._lock:
            batch = list(self._pending.items())[: self.per_round]
        for key, p in batch:
            done = now - p.since > self.keep_s
            if not done:
                try:
                    fate = await self._request(
                        p.stream_id, {"cmd": "chat_fate", "message_id": p.message_id}, wait_s=2.0
                    )
                except CommandFailed as e:
                    fate, done = {"outcome": "pending"}, not e.retryable
                if not isinstance(fate, Mapping):  # the ledger no longer holds it
                    done = True
                elif fate.get("outcome") != "pending":
                    done = True
                    data = {"kind": "chat", "fates": [dict(fate)]}
                    self._bus.publish(p.tenant_id, p.stream_id, "chat", data)
                    settled += 1
            with self._lock:
                if done:
                    self._pending.pop(key, None)
                elif key in self._pending:  # still pending: the others' turn first
                    self._pending.move_to_end(key)
        return settled

    async def run(self, every_s: float = 1.0) -> None:
        """Ask once every ``every_s`` while anything is pending, forever."""
        while True:
            await asyncio.sleep(every_s)
            if self._pending:
                try:
                    await self.check()
                except Exception:
                    log.exception("chat fate round failed")
