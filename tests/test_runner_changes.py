"""Catalog changes reach a running programme at once, and a storm of them in few batches."""

from __future__ import annotations

import logging

import pytest

from avatarcast.catalog.model import Product
from avatarcast.runner.changes import CatalogChanges


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def product(pid: str, price: str) -> Product:
    return Product.model_validate(
        {"id": pid, "title": {"en": pid}, "brand": "B", "price": price, "stock": 3}
    )


def test_first_change_is_due_at_once_and_a_burst_waits_for_the_interval() -> None:
    clock = FakeClock()
    changes = CatalogChanges(min_interval_s=0.5, clock=clock)
    assert changes.due_in() is None
    changes.add(upsert=[product("a", "10.00")], remove=[])
    assert changes.due_in() == 0.0
    upserts, removals = changes.take()
    assert [(p.id, str(p.price)) for p in upserts] == [("a", "10.00")] and removals == []
    # forty changes in the next 0.4 s: held, then handed over as one batch, latest price wins
    for i in range(40):
        clock.now += 0.01
        changes.add(upsert=[product("a", f"{11 + i}.00"), product("b", "5.00")], remove=[])
    due = changes.due_in()
    assert due is not None and abs(due - 0.1) < 1e-9
    clock.now += 0.1
    assert changes.due_in() == 0.0
    upserts, _ = changes.take()
    assert sorted((p.id, str(p.price)) for p in upserts) == [("a", "50.00"), ("b", "5.00")]
    assert changes.due_in() is None


def test_the_latest_of_upsert_and_remove_wins_per_product() -> None:
    clock = FakeClock()
    changes = CatalogChanges(min_interval_s=0.5, clock=clock)
    changes.add(upsert=[product("a", "1.00"), product("b", "2.00")], remove=[])
    changes.add(upsert=[], remove=["a"])
    changes.add(upsert=[product("c", "3.00")], remove=["b"])
    changes.add(upsert=[product("b", "4.00")], remove=[])
    upserts, removals = changes.take()
    assert sorted((p.id, str(p.price)) for p in upserts) == [("b", "4.00"), ("c", "3.00")]
    assert removals == ["a"]


def test_a_change_after_a_quiet_spell_is_not_delayed() -> None:
    clock = FakeClock()
    changes = CatalogChanges(min_interval_s=0.5, clock=clock)
    changes.add(upsert=[product("a", "1.00")], remove=[])
    changes.take()
    clock.now += 3.0
    changes.add(upsert=[product("a", "2.00")], remove=[])
    assert changes.due_in() == 0.0


def raw(pid: str, price: str) -> dict[str, object]:
    return {"id": pid, "title": {"en": pid}, "brand": "B", "price": price, "stock": 3}


def test_wire_products_are_validated_once_per_interval_and_not_again_when_unchanged() -> None:
    clock = FakeClock()
    changes = CatalogChanges(min_interval_s=0.5, clock=clock)
    changes.add(upsert=[raw("a", "10.00")], remove=[])
    (first,), _ = changes.take()
    assert first.id == "a" and str(first.price) == "10.00"
    # a storm of versions, one of them invalid: only the latest of each product is validated
    changes.add(upsert=[raw("a", "not a price"), raw("b", "5.00")], remove=[])
    changes.add(upsert=[raw("a", "10.01")], remove=[])
    clock.now += 0.5
    upserts, _ = changes.take()
    assert sorted((p.id, str(p.price)) for p in upserts) == [("a", "10.01"), ("b", "5.00")]
    # the price flips back and forth: a version equal to the last one taken is the same product
    changes.add(upsert=[raw("b", "5.00")], remove=[])
    clock.now += 0.5
    (again,), _ = changes.take()
    assert again is next(p for p in upserts if p.id == "b")


def test_an_invalid_latest_version_is_skipped_and_the_others_go_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes = CatalogChanges(min_interval_s=0.5, clock=FakeClock())
    with caplog.at_level(logging.WARNING):
        changes.add(upsert=[raw("a", "1.00"), raw("b", "-3"), {"price": "1.00"}], remove=["c"])
        upserts, removals = changes.take()
    assert [p.id for p in upserts] == ["a"] and removals == ["c"]
    assert "'b' that does not validate" in caplog.text
    assert "without an id" in caplog.text
