"""Spare actors for the Ray backend: idle, constructed stream actors each node keeps ready.

Ray 2.60 fills a node's pool of idle
workers only when the node starts, so once it is spent every actor Ray creates or restarts
is a new Python process importing the actor's module: 2.7 s from a SIGKILL to the restarted
event at load 6-7, against 0.5 s in an idle worker. So each node keeps that many idle
actors of its own, detached and named ``spare-...``, already constructed (imports done,
event loop and runner made). A start claims one (:meth:`StreamHost.claim`) instead of
creating an actor; when a claimed actor dies, this process claims another spare for its
stream at once instead of waiting for Ray (spares are made with ``max_restarts=0``), and
new spares are made in the background. A spare reserves what a stream does (``num_cpus``,
memory) on its node, so the stream that claims it is accounted for; an onnx twin's stream
(which asks for a GPU) gets an actor of its own. Without a spare (none yet, or none up), a
start makes a ``spare-`` actor for the stream and claims it, the same path cold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from avatarcast.runner.ray_calls import awaited, kill_actor, live_nodes

__all__ = ["PENDING_S", "SPARE_PREFIX", "Spare", "SparePool"]

log = logging.getLogger(__name__)

#: the names of spare actors, claimed or not (a stream's own actor is named after the stream)
SPARE_PREFIX = "spare-"
#: a spare made less than this long ago may still be claimed before it is up, and a claim of
#: one waits until this long after it was made (its Ray worker starting: 1-3 s at load 2-7
#: here, 6-9 s under the test suite's load)
PENDING_S = 10.0


@dataclass(eq=False, slots=True)
class Spare:
    """An idle actor on ``node_id``; ``ready`` resolves once it is constructed."""

    name: str
    handle: Any
    node_id: str
    ready: Future[Any] | None = None
    up: bool = False
    made_at: float = field(default_factory=time.monotonic)


#: makes an idle spare on a node (blocking: called in a thread)
MakeSpare = Callable[[str | None], Spare]


class SparePool:
    """``per_node`` idle actors on each live node that has room for a stream (``num_cpus``),
    made by ``make`` (the runner's: it knows the actor class and its options)."""

    def __init__(self, per_node: int, *, num_cpus: float, make: MakeSpare, call_s: float) -> None:
        self.per_node = per_node
        self._num_cpus = num_cpus
        self._make = make
        self._call_s = call_s
        self._spares: dict[str, Spare] = {}

    def adopt(self, name: str, handle: Any, node_id: str) -> None:
        """An idle spare found on the cluster (made by an earlier API process)."""
        self._spares[name] = Spare(name, handle, node_id, up=True)

    def up(self) -> dict[str, list[str]]:
        """The names of the idle actors that are up, per node id."""
        out: dict[str, list[str]] = {}
        for spare in self._spares.values():
            if spare.up:
                out.setdefault(spare.node_id, []).append(spare.name)
        return out

    async def refill(self) -> None:
        """Each live node with room for a stream: ``per_node`` idle actors (those that died or
        whose node is gone dropped)."""
        nodes = await asyncio.to_thread(live_nodes, self._num_cpus)
        count: dict[str, int] = dict.fromkeys(nodes, 0)
        for name, spare in list(self._spares.items()):
            if spare.ready is not None and spare.ready.done():
                if spare.ready.exception() is not None:  # it died (its node, or a kill)
                    self._spares.pop(name, None)
                    continue
                # up; asked again each round, so one that dies idle is noticed
                spare.up, spare.ready = True, spare.handle.whom.remote().future()
            if spare.node_id not in count:
                self._spares.pop(name, None)
                await asyncio.to_thread(kill_actor, spare.handle)
                continue
            count[spare.node_id] += 1
        for node_id, have in count.items():
            for _ in range(self.per_node - have):
                spare = await asyncio.to_thread(self._make, node_id)
                self._spares[spare.name] = spare

    async def claim(
        self,
        stream_id: str,
        tenant_id: str,
        *,
        replacing: bool,
        node_id: str | None,
        load: Mapping[str, int],
    ) -> Spare | None:
        """A spare that is up, now ``stream_id``'s: on ``node_id`` if there is one, else on
        the node with the least ``load`` (streams per node id); None when none is up."""
        while True:
            now = time.monotonic()
            # one still being made (Ray worker start, imports) is never slower than a new
            # actor made now: back-to-back starts outrun the refill of the pool (1 start in
            # 4 went cold in ray_bench); one pending for longer may not fit on its node
            up = [
                s
                for s in self._spares.values()
                if s.up or (s.ready is not None and s.ready.done()) or now - s.made_at < PENDING_S
            ]
            if not up:
                return None
            spare = min(up, key=lambda s: (not s.up, s.node_id != node_id, load.get(s.node_id, 0)))
            del self._spares[spare.name]
            # one still being made has until PENDING_S after it was made to be up (Ray runs
            # the claim once it is): cut at call_s (5 s), a lost node under load (a new Ray
            # worker 6-9 s from lease to constructed) had its streams kill one pending spare
            # after another, each made after the last was killed: back on air in 28 s, 20 s
            # of it in that loop (tests/test_runner_ray.py)
            wait_s = self._call_s
            if not spare.up:
                wait_s += max(0.0, PENDING_S - (now - spare.made_at))
            try:
                ref = spare.handle.claim.remote(stream_id, tenant_id, replacing)
                claimed = bool(await asyncio.wait_for(awaited(ref), wait_s))
            except Exception as e:  # dead (its node too, maybe), or not made in time
                log.warning("spare %s could not be claimed: %s", spare.name, e)
                await asyncio.to_thread(kill_actor, spare.handle)
                continue
            if claimed:
                return spare
            # another API process claimed it first: not ours to keep or end
