"""Catalog changes for a running programme, coalesced so that a burst costs one re-plan.

A price change to the product on air cuts the sentence that quoted the old price and drops
the talk written ahead about it, which is then written and voiced again. That is right for one
change and ruinous for a storm: a backend that re-sends its prices forty times a second would
make the host re-voice its look-ahead forty times a second and never finish a sentence. So the
first change after a quiet spell goes through at once and the ones that follow within
``min_interval_s`` are applied together at its end, each product at its latest version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from avatarcast.catalog.model import Product

__all__ = ["CatalogChanges"]


class CatalogChanges:
    """Upserts and removals waiting for the programme, the latest per product id."""

    def __init__(
        self, *, min_interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._latest: dict[str, Product | None] = {}  # None: removed
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._applied_at = -math.inf

    def add(self, *, upsert: list[Product], remove: list[str]) -> None:
        for product in upsert:
            self._latest[product.id] = product
        for product_id in remove:
            self._latest[product_id] = None

    def due_in(self) -> float | None:
        """Seconds until the waiting changes may be applied (0: now); None when none wait."""
        if not self._latest:
            return None
        return max(0.0, self._applied_at + self._min_interval_s - self._clock())

    def take(self) -> tuple[list[Product], list[str]]:
        """The waiting upserts and removals, handed over once; starts a new interval."""
        latest, self._latest = self._latest, {}
        self._applied_at = self._clock()
        upserts = [p for p in latest.values() if p is not None]
        removals = [pid for pid, p in latest.items() if p is None]
        return upserts, removals
