"""Which catalog facts a product change touched, so talk that states none of them can stay.

A sentence carries the fact ids it states (``Product.fact_id``). When a product changes, the
talk written ahead about it is wrong only where it states a changed fact: a new price makes the
sentence quoting the price stale, not the one about the capacity. Keeping the rest matters in
a storm of price changes, where dropping all of it means voicing the look-ahead again and again.
"""

from __future__ import annotations

from collections.abc import Iterable

from avatarcast.catalog.model import Product

__all__ = ["changed_facts", "states_changed_fact"]

_PRICES = ("price", "sale_price", "prior_lowest_price")
_SCALARS = (*_PRICES, "title", "brand", "availability", "stock")


def changed_facts(before: Product, now: Product) -> frozenset[str]:
    """The fact ids of ``before`` whose value differs in ``now`` (or that ``now`` lacks)."""
    changed: set[str] = set()
    for name in _SCALARS:
        if getattr(before, name) != getattr(now, name):
            changed.add(before.fact_id(name))
    if before.currency != now.currency:  # every amount is said in the currency
        changed.update(before.fact_id(name) for name in _PRICES)
    for key, fact in before.facts.items():
        if now.facts.get(key) != fact:
            changed.add(before.fact_id("fact", key))
    for kind, old, new in (
        ("sp", before.selling_points, now.selling_points),
        ("faq", before.faq, now.faq),
    ):
        for i, item in enumerate(old):
            if i >= len(new) or new[i] != item:
                changed.add(before.fact_id(kind, i))
    return frozenset(changed)


def states_changed_fact(facts: Iterable[str], before: Product, now: Product | None) -> bool:
    """Whether talk stating ``facts`` (written against ``before``) is no longer true in ``now``.

    A product that is gone makes everything said about it stale; an unchanged one nothing.
    """
    if now is None:
        return True
    if now is before:
        return False
    stated = set(facts)
    return bool(stated) and not stated.isdisjoint(changed_facts(before, now))
