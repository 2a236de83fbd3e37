"""Catalog changes for a running programme, coalesced so that a burst costs one re-plan.

A price change to the product on air cuts the sentence that quoted the old price and drops
the talk written ahead about it, which is then written and voiced again. That is right for one
change and ruinous for a storm: a backend that re-sends its prices forty times a second would
make the host re-voice its look-ahead forty times a second and never finish a sentence. So the
first change after a quiet spell goes through at once and the ones that follow within
``min_interval_s`` are applied together at its end, each product at its latest version.

Products may be added as they came over the wire (JSON objects): only the latest version of
each is validated, when it is taken, and one equal to the last taken is not validated again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from avatarcast.catalog.model import Product

__all__ = ["CatalogChanges"]

log = logging.getLogger(__name__)

Raw = Mapping[str, Any]


class CatalogChanges:
    """Upserts and removals waiting for the programme, the latest per product id."""

    def __init__(
        self, *, min_interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._latest: dict[str, Product | Raw | None] = {}  # None: removed
        self._taken: dict[str, tuple[Raw, Product]] = {}  # the last raw version validated
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._applied_at = -math.inf

    def add(self, *, upsert: Iterable[Product | Raw], remove: Iterable[str]) -> None:
        """Products, or JSON objects validated as products when taken; the latest wins."""
        for product in upsert:
            if isinstance(product, Product):
                self._latest[product.id] = product
            elif isinstance(product.get("id"), str):
                self._latest[product["id"]] = product
            else:
                log.warning("ignoring a product without an id")
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
        upserts: list[Product] = []
        removals: list[str] = []
        for pid, item in latest.items():
            if item is None:
                removals.append(pid)
                self._taken.pop(pid, None)
            elif isinstance(item, Product):
                upserts.append(item)
            elif (product := self._validate(pid, item)) is not None:
                upserts.append(product)
        return upserts, removals

    def _validate(self, pid: str, raw: Raw) -> Product | None:
        last = self._taken.get(pid)
        if last is not None and last[0] == raw:
            return last[1]  # the same object as before: the catalog sees no change at once
        try:
            product = Product.model_validate(raw)
        except ValidationError as e:
            log.warning("ignoring product %r that does not validate: %s", pid, e)
            return None
        self._taken[pid] = (raw, product)
        return product
