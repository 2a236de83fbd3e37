"""In-process pub/sub of product changes, so a running stream hears of a new price at once.

Routes publish after their transaction commits. A subscriber registered from inside an event
loop is called on that loop (thread-safe), one registered elsewhere is called in the
publishing thread. A failing subscriber is logged and never breaks the request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from avatarcast.catalog.model import Product

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProductChange:
    """Products of one tenant that were created or replaced, and ids that were deleted."""

    tenant_id: str
    upserted: tuple[Product, ...] = ()
    deleted: tuple[str, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.upserted) + self.deleted


ChangeCallback = Callable[[ProductChange], None]


@dataclass(eq=False, slots=True)
class _Subscriber:
    callback: ChangeCallback
    loop: asyncio.AbstractEventLoop | None = field(default=None)


class ProductChangeHub:
    def __init__(self) -> None:
        self._subs: dict[str, list[_Subscriber]] = {}
        self._lock = threading.Lock()

    def subscribe(self, tenant_id: str, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(change)`` after each committed change; returns an unsubscribe."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        sub = _Subscriber(callback, loop)
        with self._lock:
            self._subs.setdefault(tenant_id, []).append(sub)

        def unsubscribe() -> None:
            with self._lock:
                subs = self._subs.get(tenant_id, [])
                if sub in subs:
                    subs.remove(sub)
                if not subs:
                    self._subs.pop(tenant_id, None)

        return unsubscribe

    def queue(self, tenant_id: str) -> tuple[asyncio.Queue[ProductChange], Callable[[], None]]:
        """An asyncio queue of changes (call from the loop that reads it) and its unsubscribe."""
        q: asyncio.Queue[ProductChange] = asyncio.Queue()
        return q, self.subscribe(tenant_id, q.put_nowait)

    def subscriber_count(self, tenant_id: str) -> int:
        with self._lock:
            return len(self._subs.get(tenant_id, ()))

    def publish(self, change: ProductChange) -> None:
        if not change.upserted and not change.deleted:
            return
        with self._lock:
            subs = list(self._subs.get(change.tenant_id, ()))
        for sub in subs:
            if sub.loop is None or _on_loop(sub.loop):
                _deliver(sub.callback, change)
            elif not sub.loop.is_closed():
                sub.loop.call_soon_threadsafe(_deliver, sub.callback, change)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _deliver(callback: ChangeCallback, change: ProductChange) -> None:
    try:
        callback(change)
    except Exception:
        log.exception("product change subscriber failed for tenant %s", change.tenant_id)
