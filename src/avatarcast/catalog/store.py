"""The live catalog: products by id, a version counter, and change notification.

Writers read a product at the moment they write each sentence, so a price change is never
more than one sentence behind; queued talk about a changed product is flushed by the programme.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from avatarcast.catalog.model import Product

ChangeListener = Callable[[tuple[str, ...]], None]


class Catalog:
    """Products in rundown order. Safe to read from any thread; mutate from the event loop."""

    def __init__(self, products: Iterable[Product] = ()) -> None:
        self._products: dict[str, Product] = {}
        self._listeners: list[ChangeListener] = []
        self.version = 0
        for p in products:
            self._products[p.id] = p

    def __len__(self) -> int:
        return len(self._products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._products

    def get(self, product_id: str) -> Product | None:
        return self._products.get(product_id)

    def products(self) -> list[Product]:
        return list(self._products.values())

    def ids(self) -> list[str]:
        return list(self._products)

    def upsert(self, products: Iterable[Product]) -> tuple[str, ...]:
        """Insert or replace products; notifies listeners with the ids that really changed."""
        changed: list[str] = []
        for p in products:
            if self._products.get(p.id) != p:
                self._products[p.id] = p
                changed.append(p.id)
        if changed:
            self.version += 1
            for listener in list(self._listeners):
                listener(tuple(changed))
        return tuple(changed)

    def remove(self, product_id: str) -> bool:
        if self._products.pop(product_id, None) is None:
            return False
        self.version += 1
        for listener in list(self._listeners):
            listener((product_id,))
        return True

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(ids)`` after each change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def changes(self) -> asyncio.Queue[tuple[str, ...]]:
        """A queue that receives the changed ids of each change."""
        q: asyncio.Queue[tuple[str, ...]] = asyncio.Queue()
        self.subscribe(q.put_nowait)
        return q
