"""The Ray backend: each stream in a detached named actor on a Ray cluster.

One actor per stream (name = stream id, namespace ``avatarcast``), created with the stream's
resources (CPU, memory, a GPU share for an ``onnx`` twin), ``SPREAD`` over the nodes, and
``max_restarts=-1``: when the actor's process or its node dies, Ray starts it again with the
same name (on another node if its own is gone) and it brings the stream back on air
(:mod:`runner.ray_host`). The actors are detached: they outlive this API process, and a new
one re-attaches to them by name (:meth:`RayRunner.open`) instead of starting them again;
:meth:`RayRunner.drain` lets go of them without stopping them.

This process polls every actor every ``poll_s`` for its status and events (nothing else
reaches the event loop from Ray), so :meth:`status` and :meth:`whep_endpoint` answer from the
last poll without waiting.

An actor is created with the stream's id and tenant only (Ray's GCS keeps creation
arguments); the spec, with its stream keys, goes in a call (``begin``) and stays in the
actor's memory and this process's. An actor that answers without a spec (Ray restarted it)
gets it again at once, with the products pushed since, the pause and the sticky commands
(mute, pins, label, seller). An actor this process re-attached to gives its spec and sticky
commands back (``state``), so the same holds when Ray restarts it later. One that Ray
restarted while no API ran waits for the manager's restore to start its stream, which gives
it the spec; if nobody does within ``adopt_s``, it is ended.

Spares: a start, or the replacement of a claimed actor that died, takes an idle actor that
each node keeps ready (:mod:`runner.ray_spares`); spares are made with ``max_restarts=0``, so
this process, not Ray, replaces a claimed one.

Two API processes may both see a claimed actor die: the first to write the key
``replaced/<stream>/<incarnation>`` in Ray's GCS key-value store (put-if-absent) replaces it,
the other reads the new actor's name from ``host/<stream>``. The spare's ``claim`` answers
True once, so two APIs never claim the same spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from avatarcast.catalog.model import Product
from avatarcast.commands import STICKY, Command, CommandError, command_to_wire, parse_command
from avatarcast.commands import sticky_state as merged_sticky
from avatarcast.runner.base import (
    CommandFailed,
    EventCallback,
    StreamEvent,
    StreamSpec,
    StreamStatus,
)
from avatarcast.runner.ray_calls import (
    NAMESPACE,
    awaited,
    died,
    get_actor,
    kill_actor,
    kv_forget,
    kv_get,
    kv_put,
    named_actors,
)
from avatarcast.runner.ray_host import HostOptions, Poll, StreamHost
from avatarcast.runner.ray_spares import SPARE_PREFIX, Spare, SparePool

__all__ = ["NAMESPACE", "NODE_ENV", "SPARE_PREFIX", "SYSTEM_CONFIG", "RayResources", "RayRunner"]

log = logging.getLogger(__name__)


#: The head's ``ray start --system-config``: a node that stops answering is dead after 4
#: health checks 0.5 s apart, each given 1 s. Ray's default timeout of 10 s made a hung or
#: cut-off node (SIGSTOPped here) take 42 s to be declared dead even with 0.5 s x 4; with 1 s,
#: 5.6 s (``benchmarks/ray_failover.py``). A node that crashes outright (its connections
#: refused) is dead in about 2 s either way.
SYSTEM_CONFIG: dict[str, int] = {
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
    "health_check_timeout_ms": 1000,
}
#: The environment of every ``ray start`` that runs streams (head and workers).
#: ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0``: on SIGTERM, Ray 2.60's ``ray start`` drains
#: its node for up to 30 s before stopping it, waiting for leases to come back; a stream's
#: actor never gives its lease back, so every stopped node waited the whole 30 s before its
#: streams moved (32.6 s of the 34.1 s measured). Without the drain the raylet unregisters at
#: once and the GCS restarts its actors elsewhere in 1.2 s.
#: ``RAY_enable_worker_prestart`` + ``RAY_preload_python_modules``: each node starts idle Ray
#: workers (up to ``num_cpus``; 2 on a 2-core box) that have imported the actor's module
#: already, so an actor created or restarted there skips a Python start and 1.3-1.9 s of
#: imports. Ray 2.60 fills that pool only when the node starts (its ``PrestartWorkers`` call
#: has no Python binding): the first actors of a node get it, later ones start a process.
NODE_ENV: dict[str, str] = {
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_enable_worker_prestart": "1",
    "RAY_preload_python_modules": "avatarcast.runner.ray_host",
}
_ON_AIR = frozenset({"live", "paused", "safe_mode"})
_OUTPUT_KINDS = frozenset(
    {"line", "refusal", "command", "answers", "mouth_engine", "glitch", "glitch_cleared", "remedy"}
)
_STICKY_NAMES = frozenset(c.NAME for c in STICKY)


@dataclass(frozen=True, slots=True, kw_only=True)
class RayResources:
    """What one stream's actor asks of its node (``settings.runner.ray_*``)."""

    num_cpus: float = 1.0
    memory_mb: int = 1024
    #: GPUs for a stream whose twin runs the ``onnx`` mouth engine (a fraction shares one)
    onnx_gpus: float = 0.0

    def for_spec(self, spec: StreamSpec) -> dict[str, Any]:
        return self._reserve(self.onnx_gpus if spec.programme.mouth_engine == "onnx" else 0.0)

    def for_spare(self) -> dict[str, Any]:
        """A spare reserves what a stream without a GPU does."""
        return self._reserve(0.0)

    def _reserve(self, gpus: float) -> dict[str, Any]:
        return {"num_cpus": self.num_cpus, "memory": self.memory_mb * 2**20, "num_gpus": gpus}


@dataclass(eq=False, slots=True)
class _Remote:
    """One stream's actor as this process sees it. ``spec`` is None for a re-attached one."""

    stream_id: str
    handle: Any
    spec: StreamSpec | None = None
    tenant_id: str = ""
    attached_at: float = field(default_factory=time.monotonic)
    incarnation: str | None = None
    #: the last event seen; None for a re-attached actor until one comes (the actor then
    #: sends those no API acknowledged)
    since: int | None = 0
    poll: Poll | None = None
    unreachable: str | None = None
    actor_restarts: int = 0
    stop_requested: bool = False
    sticky: list[Command] = field(default_factory=list)
    #: the name of the claimed spare that runs it; None: an actor named after the stream,
    #: which Ray restarts itself
    host: str | None = None


class RayRunner:
    """A :class:`~avatarcast.runner.base.StreamRunner` of detached actors on a Ray cluster."""

    def __init__(
        self,
        *,
        address: str | None,
        on_event: EventCallback | None = None,
        on_output: EventCallback | None = None,
        resources: RayResources | None = None,
        host: HostOptions | None = None,
        poll_s: float = 0.25,
        call_s: float = 5.0,
        adopt_s: float = 60.0,
        spares: int = 1,
    ) -> None:
        self._address = address
        self._on_event = on_event
        self._on_output = on_output
        self._resources = resources or RayResources()
        self._host = host or HostOptions()
        self._poll_s = poll_s
        self._call_s = call_s
        self._adopt_s = adopt_s
        self._streams: dict[str, _Remote] = {}
        self._pool = SparePool(
            spares, num_cpus=self._resources.num_cpus, make=self._create_spare, call_s=call_s
        )
        self._draining = False
        self._actor_class: Any = None

    # --- connecting ---------------------------------------------------------------------------

    async def open(self) -> list[str]:
        """Join the cluster and re-attach to the stream actors already running there; their
        ids, after one poll of each (their status is known before the API serves)."""
        self._actor_class = await asyncio.to_thread(self._connect)
        names = await asyncio.to_thread(named_actors)
        hosts = []
        for name in names:
            handle = await asyncio.to_thread(get_actor, name)
            if handle is None:
                continue
            if name.startswith(SPARE_PREFIX):
                hosts.append((name, handle))
            else:
                self._streams[name] = _Remote(name, handle, since=None)
        await asyncio.gather(*(self._adopt(name, handle) for name, handle in hosts))
        # their state now; their events when polling begins (the manager is there to take them)
        await self.poll_all(deliver=False)
        if self._streams:
            log.warning("re-attached to %d stream actors on the cluster", len(self._streams))
        return sorted(self._streams)

    async def _adopt(self, name: str, handle: Any) -> None:
        """A ``spare-`` actor found on the cluster: a stream's, or a spare for the pool."""
        try:
            ref = handle.whom.remote()
            stream_id, node_id, _ = await asyncio.wait_for(awaited(ref), self._call_s)
        except Exception as e:  # dead, or still constructing: the pool makes its own
            log.warning("spare actor %s did not answer: %s", name, e)
            return
        if stream_id is None:
            self._pool.adopt(name, handle, node_id)
        else:
            self._streams[stream_id] = _Remote(stream_id, handle, since=None, host=name)

    def _connect(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(
                address=self._address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        return ray.remote(StreamHost)

    async def close(self) -> None:
        """Let go of the cluster; the actors go on."""
        import ray

        await asyncio.to_thread(ray.shutdown)

    async def _acknowledge(self) -> None:
        async def ack(r: _Remote) -> None:
            with contextlib.suppress(Exception):  # a dead actor resends nothing anyway
                ref = r.handle.poll.remote(r.since, r.incarnation)
                await asyncio.wait_for(awaited(ref), self._call_s)

        remotes = [r for r in self._streams.values() if r.handle is not None and r.since]
        if remotes:
            await asyncio.gather(*(ack(r) for r in remotes))

    async def run(self) -> None:
        """Poll every actor, and keep each node's spares, forever."""
        async with asyncio.TaskGroup() as tg:
            if self._pool.per_node > 0:
                tg.create_task(self._tend_spares())
            while not self._draining:
                await self.poll_all()
                await asyncio.sleep(self._poll_s)

    # --- spares ------------------------------------------------------------------------------

    async def _tend_spares(self) -> None:
        while not self._draining:
            try:
                await self._pool.refill()
            except Exception:
                log.exception("keeping the spare actors failed")
            await asyncio.sleep(1.0)

    def spares(self) -> dict[str, list[str]]:
        """The names of the idle actors that are up, per node id."""
        return self._pool.up()

    def _create_spare(
        self, node_id: str | None, stream: tuple[str, str, bool] | None = None
    ) -> Spare:
        """An idle actor on ``node_id`` (None: anywhere, spread), detached, not restarted by
        Ray (this process replaces a claimed one that dies); with ``stream`` (id, tenant,
        replacing), one claimed from the start: a start or replacement with no spare up."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = f"{SPARE_PREFIX}{uuid.uuid4().hex[:16]}"
        strategy: Any = "SPREAD"
        if node_id is not None:
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        options = {
            "name": name,
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "max_restarts": 0,
            "max_concurrency": 8,
            "scheduling_strategy": strategy,
            **self._resources.for_spare(),
        }
        stream_id, tenant_id, replacing = stream or (None, "", False)
        actor = self._actor_class.options(**options)
        handle = actor.remote(stream_id, tenant_id, self._host, replacing=replacing)
        return Spare(name, handle, node_id or "", ready=handle.whom.remote().future())

    async def _host_for(
        self, stream_id: str, tenant_id: str, *, replacing: bool, node_id: str | None
    ) -> tuple[Any, str]:
        """A claimed spare for the stream, or a new ``spare-`` actor claimed at once (cold)."""
        load: dict[str, int] = {}  # this process's streams per node
        for r in self._streams.values():
            if r.poll is not None and r.handle is not None:
                load[r.poll.node_id] = load.get(r.poll.node_id, 0) + 1
        spare = await self._pool.claim(
            stream_id, tenant_id, replacing=replacing, node_id=node_id, load=load
        )
        if spare is None:  # begin is queued by Ray until it is constructed
            claimed = (stream_id, tenant_id, replacing)
            spare = await asyncio.to_thread(self._create_spare, None, claimed)
        await asyncio.to_thread(kv_put, f"host/{stream_id}", spare.name, True)
        return spare.handle, spare.name

    # --- the StreamRunner interface -----------------------------------------------------------

    async def start(self, stream_id: str, spec: StreamSpec) -> None:
        if self._draining:
            log.warning("stream %s not started: the runner is draining", stream_id)
            return
        previous = self._streams.get(stream_id)
        if previous is not None and previous.handle is not None and previous.spec is None:
            # re-attached, and Ray restarted it while no API ran: the next poll begins it
            previous.spec, previous.tenant_id = spec, spec.tenant_id
            return
        self._streams.pop(stream_id, None)
        if previous is not None and previous.handle is not None:
            await asyncio.to_thread(kill_actor, previous.handle)
        host = None
        if self._pool.per_node > 0 and not self._resources.for_spec(spec)["num_gpus"]:
            handle, host = await self._host_for(
                stream_id, spec.tenant_id, replacing=False, node_id=None
            )
        else:
            handle = await asyncio.to_thread(self._create, stream_id, spec)
        r = _Remote(stream_id, handle, spec=spec, tenant_id=spec.tenant_id, host=host)
        self._streams[stream_id] = r
        self._begin(r)  # queued by Ray until the actor is up; a poll repeats it if lost

    def _create(self, stream_id: str, spec: StreamSpec) -> Any:
        options = {
            "name": stream_id,
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "max_restarts": -1,
            "max_concurrency": 8,
            "scheduling_strategy": "SPREAD",
            **self._resources.for_spec(spec),
        }
        deadline = time.monotonic() + 10
        while True:
            try:
                actor = self._actor_class.options(**options)
                # no spec here: Ray's GCS keeps creation arguments, and it holds stream keys
                return actor.remote(stream_id, spec.tenant_id, self._host)
            except ValueError:  # the name of an actor just killed is not free yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    async def stop(self, stream_id: str) -> None:
        await self._stop(stream_id, kill=False)

    async def kill(self, stream_id: str) -> None:
        await self._stop(stream_id, kill=True)

    async def _stop(self, stream_id: str, *, kill: bool) -> None:
        r = self._streams.get(stream_id)
        if r is None or r.handle is None or r.stop_requested:
            return
        r.stop_requested = True
        await self._call(r, r.handle.stop.remote(kill))

    async def pause(self, stream_id: str) -> None:
        await self._set_paused(stream_id, True)

    async def resume(self, stream_id: str) -> None:
        await self._set_paused(stream_id, False)

    async def _set_paused(self, stream_id: str, paused: bool) -> None:
        r = self._streams.get(stream_id)
        if r is None or r.handle is None:
            return
        if r.spec is not None:
            r.spec = r.spec.model_copy(update={"paused": paused})
        await self._call(r, r.handle.pause.remote(paused))

    def status(self, stream_id: str) -> StreamStatus | None:
        r = self._streams.get(stream_id)
        if r is None:
            return None
        poll = r.poll
        base = poll.status if poll is not None else None
        if base is None:
            base = StreamStatus(stream_id=stream_id, state="starting")
        node = poll.node_id if poll is not None else None
        status = replace(base, restarts=base.restarts + r.actor_restarts, node=node)
        if r.handle is None:
            return replace(status, state="stopped", pid=None, whep_port=None)
        if r.unreachable is not None:
            return replace(status, state="restarting", pid=None, last_error=r.unreachable)
        if r.stop_requested and status.state not in ("stopped", "failed"):
            return replace(status, state="stopping")
        return status

    def whep_endpoint(self, stream_id: str) -> tuple[str, str] | None:
        status = self.status(stream_id)
        r = self._streams.get(stream_id)
        if r is None or r.poll is None or status is None or status.state not in _ON_AIR:
            return None
        return r.poll.whep

    def running(self) -> Sequence[str]:
        """Streams on the cluster, less those waiting for a spec nobody gave yet."""
        return [
            sid
            for sid, r in self._streams.items()
            if r.handle is not None
            and not r.stop_requested
            and (r.spec is not None or (r.poll is not None and r.poll.armed))
        ]

    async def push_products(
        self, stream_id: str, products: Sequence[Product], removed: Sequence[str] = ()
    ) -> None:
        r = self._streams.get(stream_id)
        if r is None or r.handle is None or (not products and not removed):
            return
        if r.spec is not None:  # for an actor that comes back from its creation arguments
            merged = {p.id: p for p in r.spec.products}
            merged.update((p.id, p) for p in products)
            for pid in removed:
                merged.pop(pid, None)
            r.spec = r.spec.model_copy(update={"products": tuple(merged.values())})
        await self._call(r, r.handle.push_products.remote(list(products), list(removed)))

    async def send(self, stream_id: str, command: Mapping[str, Any]) -> None:
        r = self._streams.get(stream_id)
        if r is None or r.handle is None:
            return
        _remember(r, command)
        await self._call(r, r.handle.send.remote(dict(command)))

    async def request(
        self, stream_id: str, command: Mapping[str, Any], *, wait_s: float = 5.0
    ) -> Any:
        r = self._streams.get(stream_id)
        if r is None or r.handle is None or r.stop_requested or r.unreachable is not None:
            raise CommandFailed(f"stream {stream_id} is not running", retryable=False)
        _remember(r, command)  # a supervisor's mute comes as a request
        try:
            ref = r.handle.request.remote(dict(command), wait_s)
            ok, result, retryable = await asyncio.wait_for(awaited(ref), wait_s + self._call_s)
        except TimeoutError:
            raise CommandFailed(
                f"stream {stream_id} did not answer within {wait_s:g} s", retryable=True
            ) from None
        except Exception as e:  # the actor died or is restarting
            raise CommandFailed(f"stream {stream_id}: {type(e).__name__}", retryable=True) from e
        if not ok:
            raise CommandFailed(str(result), retryable=bool(retryable))
        return result

    def shared_by_replicas(self) -> bool:
        """Every replica reaches every actor (:class:`~avatarcast.runner.base.SharedRunner`)."""
        return True

    async def drain(self) -> None:
        """The API is ending: stop polling, and tell each actor what this API has delivered.
        The streams go on, on the cluster.

        An actor resends what came after the last ``since`` it was given (at least once): the
        events of the last poll went again to the next API and were recorded twice (a mute
        applied once showed as two, about 1 run in 5 of the Ray test).
        """
        self._draining = True
        await self._acknowledge()

    # --- polling -----------------------------------------------------------------------------

    async def poll_all(self, *, deliver: bool = True) -> None:
        remotes = [r for r in self._streams.values() if r.handle is not None]
        if remotes:
            await asyncio.gather(*(self._poll(r, deliver=deliver) for r in remotes))

    async def _poll(self, r: _Remote, *, deliver: bool = True) -> None:
        """One poll of one actor; its events go to the callbacks when ``deliver``."""
        try:
            ref = r.handle.poll.remote(r.since, r.incarnation)
            poll: Poll = await asyncio.wait_for(awaited(ref), self._call_s)
        except Exception as e:  # the actor is dead, restarting, or its node is gone
            if r.host is not None and r.spec is not None and died(e) and not r.stop_requested:
                await self._replace(r)
                return
            if r.incarnation is None:  # not answered yet: Ray is still starting it
                return
            if r.unreachable is None:
                r.unreachable = f"the stream's actor is unreachable ({type(e).__name__})"
                if not r.stop_requested:
                    node = r.poll.node_id if r.poll is not None else None
                    self._emit(r, "crashed", reason="actor unreachable", node=node)
            return
        r.unreachable = None
        r.tenant_id = poll.tenant_id
        if poll.incarnation != r.incarnation:
            if r.incarnation is not None:  # a new actor: it counts from 1, and from 0 restarts
                last = r.poll.status if r.poll is not None else None
                # its worker's restarts in the last actor are carried, so the count only grows
                # (the health a client compares before and after a kill)
                r.actor_restarts += 1 + (last.restarts if last is not None else 0)
                r.since = 0
            r.incarnation = poll.incarnation
        r.poll = poll
        if not poll.armed and not r.stop_requested:
            if r.spec is not None:  # a new incarnation: the spec, products, pause, sticky
                self._begin(r)
            elif time.monotonic() - r.attached_at > self._adopt_s:
                log.warning("stream %s: an actor nobody started; ending it", r.stream_id)
                handle, r.handle = r.handle, None
                await asyncio.to_thread(kill_actor, handle)
                return
        elif poll.armed and r.spec is None:  # re-attached: what Ray's restart would lose
            await self._read_state(r)
        for seq, event in poll.events if deliver else ():
            r.since = max(r.since or 0, seq)
            callback = self._on_output if event.kind in _OUTPUT_KINDS else self._on_event
            self._deliver(callback, event)
        if r.stop_requested and poll.status is not None and poll.status.state == "stopped":
            handle, r.handle = r.handle, None
            await asyncio.to_thread(kill_actor, handle)
            if r.host is not None:
                await asyncio.to_thread(kv_forget, r.stream_id)

    async def _replace(self, r: _Remote) -> None:
        """A claimed spare died: another spare takes its stream (or, when another API process
        replaced it first, this one follows to the actor that did)."""
        node = r.poll.node_id if r.poll is not None else None
        if r.unreachable is None:
            r.unreachable = "the stream's actor died"
            self._emit(r, "crashed", reason="actor unreachable", node=node)
        first = await asyncio.to_thread(
            kv_put, f"replaced/{r.stream_id}/{r.incarnation}", r.host or "", False
        )
        if not first:
            name = await asyncio.to_thread(kv_get, f"host/{r.stream_id}")
            if name and name != r.host:
                handle = await asyncio.to_thread(get_actor, name)
                if handle is not None:
                    r.handle, r.host = handle, name
            return
        assert r.spec is not None
        dead = r.handle
        handle, host = await self._host_for(
            r.stream_id, r.tenant_id or r.spec.tenant_id, replacing=True, node_id=node
        )
        if self._streams.get(r.stream_id) is not r or r.handle is not dead or r.stop_requested:
            # started again or stopped meanwhile: the new actor must not run it a second time
            log.warning("stream %s: replacement %s not needed; ending it", r.stream_id, host)
            await asyncio.to_thread(kill_actor, handle)
            return
        log.warning("stream %s: its actor %s died; %s takes over", r.stream_id, r.host, host)
        r.handle, r.host = handle, host
        self._begin(r)  # the next poll sees its incarnation: a restart, counted

    def _begin(self, r: _Remote) -> None:
        """Give the actor its spec and sticky commands (it ignores a second time)."""
        assert r.spec is not None
        sticky = [command_to_wire(c) for c in r.sticky]
        r.handle.begin.remote(r.spec.model_dump_json(), sticky)

    async def _read_state(self, r: _Remote) -> None:
        try:
            ref = r.handle.state.remote()
            state: tuple[str, list[dict[str, Any]]] | None
            state = await asyncio.wait_for(awaited(ref), self._call_s)
        except Exception as e:
            log.warning("stream %s: its actor's state did not come: %s", r.stream_id, e)
            return
        if state is None:
            return
        spec_json, sticky = state
        r.spec = StreamSpec.model_validate_json(spec_json)
        commands = []
        for wire in sticky:
            with contextlib.suppress(CommandError):
                commands.append(parse_command(wire))
        r.sticky = merged_sticky(commands)

    async def _call(self, r: _Remote, ref: Any) -> None:
        try:
            await asyncio.wait_for(awaited(ref), self._call_s)
        except Exception as e:
            log.warning("stream %s: a call to its actor failed: %s", r.stream_id, e)

    def _emit(self, r: _Remote, kind: str, **detail: Any) -> None:
        event = StreamEvent(stream_id=r.stream_id, tenant_id=r.tenant_id, kind=kind, detail=detail)
        self._deliver(self._on_event, event)

    @staticmethod
    def _deliver(callback: EventCallback | None, event: StreamEvent) -> None:
        if callback is None:
            return
        try:
            callback(event)
        except Exception:
            log.exception("event callback failed for stream %s", event.stream_id)


def _remember(r: _Remote, command: Mapping[str, Any]) -> None:
    """A sticky command, given again to a new incarnation of the actor."""
    if command.get("cmd") in _STICKY_NAMES:
        with contextlib.suppress(CommandError):
            r.sticky = merged_sticky([*r.sticky, parse_command(command)])
