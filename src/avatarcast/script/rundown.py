"""The rundown: which product is on, and which segment of it comes next.

Products are presented in catalog order, each as ``intro, facts, offer, cta, transition``, then
the next one, round and round. The product is read from the live catalog at every step, so a
price change shows in the very next segment, and a removed product is skipped at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.frames import SegmentKind
from avatarcast.locale import language
from avatarcast.script.base import SegmentRequest

__all__ = ["SEGMENTS", "Rundown"]

SEGMENTS: tuple[SegmentKind, ...] = ("intro", "facts", "offer", "cta", "transition")


class Rundown:
    """Cycles through the catalog; call it with the media time to get the next segment.

    Out-of-stock products are passed over while any product is available. A call returns None
    only when the catalog is empty. Not thread-safe: one rundown per stream.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        lang: str,
        segments: Sequence[SegmentKind] = SEGMENTS,
        start_at: str | None = None,
    ) -> None:
        if not segments:
            raise ValueError("a rundown needs at least one segment kind")
        language(lang)
        self._catalog = catalog
        self._lang = lang
        self._segments = tuple(segments)
        self._current: str | None = start_at
        self._step = 0
        self._order: list[str] = catalog.ids()
        self.cycles = 0

    @property
    def current_product_id(self) -> str | None:
        """The product being presented (or about to be), if any."""
        return self._current

    @property
    def current_product(self) -> Product | None:
        return self._catalog.get(self._current) if self._current is not None else None

    def jump_to(self, product_id: str) -> None:
        """Present ``product_id`` next, from its first segment (a supervisor's choice)."""
        self._current = product_id
        self._step = 0

    def __call__(self, media_time: float) -> SegmentRequest | None:
        return self.next(media_time)

    def next(self, media_time: float) -> SegmentRequest | None:
        """The next segment to write, with the product as the catalog has it now."""
        product = self._resolve()
        if product is None:
            return None
        kind = self._segments[self._step]
        upcoming = self._successor(product.id)
        request = SegmentRequest(
            product=product,
            kind=kind,
            lang=self._lang,
            media_time=media_time,
            next_product=upcoming if upcoming is not None and upcoming.id != product.id else None,
        )
        self._step += 1
        if self._step == len(self._segments):
            self._step = 0
            self._current = upcoming.id if upcoming is not None else None
            if self._current is not None and self._is_first(self._current):
                self.cycles += 1
        return request

    # --- order ---------------------------------------------------------------------------------

    def _resolve(self) -> Product | None:
        """The current product; when it is gone or unavailable, the one after it."""
        ids = self._catalog.ids()
        if not ids:
            self._current = None
            return None
        current = self._catalog.get(self._current) if self._current is not None else None
        if current is None or not self._presentable(current):
            if self._current is None:
                candidate = self._first_presentable(ids)
            else:
                candidate = self._successor(self._current)
            self._step = 0
            self._current = candidate.id if candidate is not None else None
            current = candidate
        self._order = ids
        return current

    def _successor(self, product_id: str) -> Product | None:
        """The first presentable product after ``product_id``, wrapping round.

        A removed product is placed by where it stood when last seen in the catalog.
        """
        ids = self._catalog.ids()
        if not ids:
            return None
        if product_id in ids:
            start = ids.index(product_id) + 1
        else:
            before = (
                self._order[: self._order.index(product_id)] if product_id in self._order else []
            )
            start = sum(1 for i in ids if i in before)
        ring = ids[start:] + ids[:start]
        return self._first_presentable(ring)

    def _first_presentable(self, ids: Sequence[str]) -> Product | None:
        products = [p for i in ids if (p := self._catalog.get(i)) is not None]
        available = [p for p in products if self._presentable(p)]
        if available:
            return available[0]
        return products[0] if products else None

    def _presentable(self, product: Product) -> bool:
        if product.availability != "out_of_stock":
            return True
        return not any(p.availability != "out_of_stock" for p in self._catalog.products())

    def _is_first(self, product_id: str) -> bool:
        first = self._first_presentable(self._catalog.ids())
        return first is not None and first.id == product_id
