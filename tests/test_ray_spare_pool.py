"""``SparePool.claim`` without a cluster: a spare still being made is waited for until it is
up (within ``PENDING_S`` of being made), not given up and killed after ``call_s``. Under
load a new Ray worker takes 6-9 s from lease to constructed, so cutting at the 5 s ``call_s``
killed one pending spare after another and a stopped node's streams waited 20 s for that
(``tests/test_runner_ray.py``, node stop: 28 s to back on air, 8.5 s without it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from avatarcast.runner import ray_spares
from avatarcast.runner.ray_spares import PENDING_S, Spare, SparePool

#: the pool's call deadline here; the spare answers its claim after 3 times that
CALL_S = 0.2


class _Claim:
    """A stand-in for an actor method: ``remote()`` answers ``answer`` after ``delay_s``."""

    def __init__(self, delay_s: float, answer: bool) -> None:
        self.delay_s, self.answer, self.calls = delay_s, answer, 0

    def remote(self, *args: Any) -> Any:
        self.calls += 1

        async def later() -> bool:
            await asyncio.sleep(self.delay_s)
            return self.answer

        return later()


class _Handle:
    def __init__(self, delay_s: float) -> None:
        self.claim = _Claim(delay_s, True)


def _pool(*spares: Spare) -> SparePool:
    def make(node_id: str | None) -> Spare:
        raise AssertionError("claim makes no spare")

    pool = SparePool(1, num_cpus=0.5, make=make, call_s=CALL_S)
    pool._spares.update((s.name, s) for s in spares)
    return pool


@pytest.fixture
def killed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The handles the pool kills (``ray.kill`` in production)."""
    handles: list[Any] = []
    monkeypatch.setattr(ray_spares, "kill_actor", handles.append)
    return handles


async def test_a_spare_still_being_made_is_waited_for_past_call_s(killed: list[Any]) -> None:
    assert 3 * CALL_S < PENDING_S
    pending = Spare("spare-pending", _Handle(3 * CALL_S), "node-a")  # made now, not up
    got = await _pool(pending).claim("s1", "t1", replacing=True, node_id="node-a", load={})
    assert got is pending
    assert pending.handle.claim.calls == 1
    assert killed == []


async def test_a_spare_that_is_up_still_answers_within_call_s(killed: list[Any]) -> None:
    """One that is up and does not answer in ``call_s`` is dropped (dead or hung), and the
    next one is claimed."""
    hung = Spare("spare-hung", _Handle(3 * CALL_S), "node-a", up=True)
    other = Spare("spare-other", _Handle(0.0), "node-b", up=True)
    got = await _pool(hung, other).claim("s1", "t1", replacing=True, node_id="node-a", load={})
    assert got is other
    assert hung.handle.claim.calls == 1
    assert killed == [hung.handle]
