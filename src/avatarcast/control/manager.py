"""Keeps a runner in line with the database: desired states, product changes, events.

The database says what each stream should be (``desired_state``); :meth:`StreamManager.reconcile`
makes the runner match it, and is safe to call any number of times. Runner events and product
pushes go through one queue that :meth:`StreamManager.run` works off, so callbacks from the
runner or the change hub never block and never touch the database on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.catalog.model import Product
from avatarcast.commands import Command, SafeMode, SellerChanged, command_to_wire
from avatarcast.control.auditing import audit_system
from avatarcast.control.event_log import HeldEvents
from avatarcast.control.hub import ProductChange, ProductChangeHub
from avatarcast.control.images import ImageStore
from avatarcast.control.leases import StreamLeases
from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.supervision import SupervisionAction, SupervisionWatch
from avatarcast.db.base import utcnow
from avatarcast.db.events import record_event
from avatarcast.db.models import Destination, ProductRow, Tenant
from avatarcast.db.models_streams import StreamRow, TranscriptLine
from avatarcast.db.products import to_product
from avatarcast.pipeline.live_status import LiveStatus
from avatarcast.pipeline.spec import ProgrammeChoices, ProgrammeOptions
from avatarcast.runner.base import StreamEvent, StreamRunner, StreamSpec
from avatarcast.script.llm import LlmOptions
from avatarcast.settings import MonitorSettings

__all__ = ["ProgrammeDefaults", "StreamManager", "hls_folder", "push_url"]

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
#: Runner events that say what a stream's process did; they go to events and the audit log.
_STATE_EVENTS = frozenset({"started", "restarted", "crashed", "stopped", "failed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgrammeDefaults:
    """Server-wide settings every stream's programme shares."""

    recordings_dir: Path
    #: streams with HLS write into ``hls_dir/<tenant>/<stream>`` (None: ./hls)
    hls_dir: Path | None = None
    size: str = "720p"
    fps: int = 25
    ice_servers: tuple[dict[str, Any], ...] = ()
    #: the model endpoint for streams with writer "llm"
    llm: LlmOptions | None = field(default=None, repr=False)
    #: where destinations may connect, checked again at every connect (``NetPolicy.to_json``)
    net_policy: dict[str, Any] | None = None
    #: PEM certificates trusted for rtmps on top of the system CA bundle
    ca_file: str | None = None
    #: where products' ``asset:`` images are; other image values never reach a worker
    images: ImageStore | None = None
    #: the on-air monitors' thresholds and remediation, for every stream
    monitors: MonitorSettings = field(default_factory=MonitorSettings)


@dataclass(frozen=True, slots=True)
class _Selection:
    tenant_id: str
    product_ids: frozenset[str] | None  # None: the whole catalog
    #: nobody is on duty, or the one on duty never sent a heartbeat: start on the slate
    waiting: bool = False


def hls_folder(root: Path | None, tenant_id: str, stream_id: str) -> Path:
    """Where a stream's HLS files live; the worker writes there and ``serve`` reads."""
    return (root or Path("hls")) / tenant_id / stream_id


def hls_spec(root: Path | None, row: StreamRow) -> tuple[Path | None, bool]:
    """The stream's HLS folder (None: no HLS) and whether it is low-latency, from its row."""
    hls = row.hls or {}
    if not hls.get("enabled"):
        return None, False
    return hls_folder(root, row.tenant_id, row.id), bool(hls.get("low_latency"))


def push_url(url: str, stream_key: str | None) -> str:
    """The URL a sink pushes to: RTMP appends the key to the path, SRT sets ``streamid``."""
    if not stream_key:
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() == "srt":
        query = "&".join(q for q in (parts.query, urlencode({"streamid": stream_key})) if q)
        return urlunsplit(parts._replace(query=query))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + stream_key))


class StreamManager:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        runner: StreamRunner,
        hub: ProductChangeHub,
        defaults: ProgrammeDefaults,
        watch: SupervisionWatch | None = None,
        open_secret: Callable[[str], str] = str,
        live_limit: int | None = None,
        leases: StreamLeases | None = None,
    ) -> None:
        """``open_secret`` turns a stored stream key into the one to push with (the server
        key decrypts it). With ``leases`` a stream starts here only when this process claims
        it (several API processes on one database; see ``control/leases.py``)."""
        self.sessions = sessions
        self.leases = leases
        self.open_secret = open_secret
        #: streams one tenant may have on air (``quotas.live_streams``), applied at restore
        self.live_limit = live_limit
        self.runner = runner
        self.hub = hub
        self.defaults = defaults
        self.watch = watch
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        self._selections: dict[str, _Selection] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        #: called on the event loop with every runner event and supervision action (the
        #: console's event bus listens here); a listener must return at once
        self.listeners: list[Callable[[StreamEvent], None]] = []
        #: events on their way to the database (held while it cannot take them)
        self.unwritten = HeldEvents(self._write_events)

    # --- reconciling ------------------------------------------------------------------------

    async def reconcile(self, stream_id: str) -> None:
        """Start, stop, pause or resume ``stream_id`` so the runner matches the database."""
        loaded = await asyncio.to_thread(self._load, stream_id)
        status = self.runner.status(stream_id)
        running = stream_id in self.runner.running() and status is not None
        if loaded is None or loaded[0] == "stopped":
            if running:
                await self.runner.stop(stream_id)
                if self.leases is not None:
                    await asyncio.to_thread(self.leases.release, [stream_id])
            self._selections.pop(stream_id, None)
            if self.watch is not None:
                self.watch.disarm(stream_id)
            return
        desired, spec, selection, on_duty = loaded
        if not running and not on_duty:
            await asyncio.to_thread(self._hold, stream_id, desired)
            return
        if not running and self.leases is not None:
            owner = await asyncio.to_thread(self.leases.claim, stream_id)
            if owner is not None:  # another API process runs it
                log.info("stream %s runs on replica %s, not here", stream_id, owner)
                return
        self._selections[stream_id] = selection
        if self.watch is not None:
            self.watch.arm(stream_id, waiting=selection.waiting)
        self._subscribe(selection.tenant_id)
        if not running:
            await self.runner.start(stream_id, spec)
        elif desired == "paused":
            await self.runner.pause(stream_id)
        else:
            await self.runner.resume(stream_id)

    def _hold(self, stream_id: str, desired: str, reason: str = "no supervisor on duty") -> None:
        """The start route's rules, for every other way in (restore, schedules): a stream goes
        on air only with a supervisor on duty (and within its tenant's quota). The desired
        state stays, so the stream starts when one takes duty; the event says why not now."""
        with self.sessions() as session:
            row = session.get(StreamRow, stream_id)
            if row is None:
                return
            detail = {"reason": reason, "desired_state": desired}
            record_event(
                session, tenant_id=row.tenant_id, stream_id=row.id, kind="held", detail=detail
            )
            session.commit()
        log.warning("stream %s not started: %s", stream_id, reason)

    async def restore(self) -> list[str]:
        """After a restart: bring back every stream that should be on air and has a
        supervisor on duty, oldest first, up to its tenant's ``live_limit``; the others are
        held (:meth:`_hold`)."""
        rows = await asyncio.to_thread(self._on_air_rows)
        per_tenant: Counter[str] = Counter()
        for stream_id, tenant_id, desired in rows:
            if self.live_limit is not None and per_tenant[tenant_id] >= self.live_limit:
                reason = f"the tenant's quota of {self.live_limit} live streams is reached"
                await asyncio.to_thread(self._hold, stream_id, desired, reason)
                continue
            per_tenant[tenant_id] += 1
            try:
                await self.reconcile(stream_id)
            except Exception:
                log.exception("could not restore stream %s", stream_id)
        on_air = {r[0] for r in rows}
        for stream_id in [sid for sid in self.runner.running() if sid not in on_air]:
            try:  # found on a cluster, stopped or deleted while this process was away
                await self.reconcile(stream_id)
            except Exception:
                log.exception("could not stop stream %s", stream_id)
        return [r[0] for r in rows]

    def _on_air_rows(self) -> list[tuple[str, str, str]]:
        with self.sessions() as session:
            query = select(StreamRow.id, StreamRow.tenant_id, StreamRow.desired_state).where(
                StreamRow.desired_state.in_(("live", "paused"))
            )
            return [
                (r[0], r[1], r[2]) for r in session.execute(query.order_by(StreamRow.created_at))
            ]

    def _load(self, stream_id: str) -> tuple[str, StreamSpec, _Selection, bool] | None:
        with self.sessions() as session:
            row = session.get(StreamRow, stream_id)
            if row is None:
                return None
            on_duty = row.duty_supervisor_id is not None
            return row.desired_state, self.spec_for(session, row), _selection(row), on_duty

    def spec_for(self, session: Session, row: StreamRow) -> StreamSpec:
        """The worker's spec: the selected products now, destinations with their keys, the
        tenant's seller."""
        dests = session.scalars(
            select(Destination).where(
                Destination.tenant_id == row.tenant_id, Destination.id.in_(row.destination_ids)
            )
        ).all()
        by_id = {d.id: d for d in dests}
        chosen = [by_id[d] for d in row.destination_ids if d in by_id]
        urls = tuple(push_url(dest.url, self._key(dest)) for dest in chosen)
        preset = row.preset or "none"
        layouts = tuple(
            f"{dest.size or row.size or self.defaults.size}/{dest.preset or preset}"
            if dest.size or dest.preset
            else None
            for dest in chosen
        )
        d = self.defaults
        tenant = session.get(Tenant, row.tenant_id)
        choices = ProgrammeChoices.model_validate(
            {
                "lang": row.lang,
                "avatar": row.avatar,
                "voice": row.voice,
                "writer": row.writer,
                "size": row.size,
                "preset": preset,
                "label": row.label,
                "mouth_engine": row.mouth_engine,
                "mouth_model": row.mouth_model,
            }
        )
        programme = ProgrammeOptions.from_choices(
            choices,
            default_size=d.size,
            stream_id=row.id,
            llm=d.llm if row.writer == "llm" else None,
            fps=d.fps,
            seller=tenant.seller if tenant is not None else None,
        )
        hls_dir, hls_low_latency = hls_spec(d.hls_dir, row)
        return StreamSpec(
            tenant_id=row.tenant_id,
            programme=programme,
            approve_answers=row.approve_answers,
            products=tuple(
                self._local_image(row.tenant_id, p)
                for p in selected_products(session, row.tenant_id, row.product_ids)
            ),
            destinations=urls,
            destination_layouts=layouts,
            record_dir=d.recordings_dir / row.tenant_id / row.id if row.record else None,
            session_dir=d.recordings_dir / row.tenant_id / row.id,
            paused=row.desired_state == "paused",
            ice_servers=d.ice_servers,
            net_policy=d.net_policy,
            ca_file=d.ca_file,
            hls_dir=hls_dir,
            hls_low_latency=hls_low_latency,
            monitors=d.monitors,
        )

    def _key(self, destination: Destination) -> str | None:
        stored = destination.stream_key
        return self.open_secret(stored) if stored else None

    def _local_image(self, tenant_id: str, product: Product) -> Product:
        """The product as a worker sees it: its image a file of the tenant's asset store."""
        store = self.defaults.images
        if product.image is None or store is None:
            return product
        return product.model_copy(update={"image": store.local_image(tenant_id, product.image)})

    # --- product changes --------------------------------------------------------------------

    def _subscribe(self, tenant_id: str) -> None:
        if tenant_id not in self._unsubscribe:
            self._unsubscribe[tenant_id] = self.hub.subscribe(tenant_id, self._on_change)

    def _on_change(self, change: ProductChange) -> None:
        running = set(self.runner.running())
        for stream_id, sel in list(self._selections.items()):
            if sel.tenant_id != change.tenant_id or stream_id not in running:
                continue
            wanted = sel.product_ids
            upserted = [
                self._local_image(change.tenant_id, p)
                for p in change.upserted
                if wanted is None or p.id in wanted
            ]
            deleted = [i for i in change.deleted if wanted is None or i in wanted]
            if upserted or deleted:
                self._jobs.put_nowait(self._pusher(stream_id, upserted, deleted))

    def _pusher(self, stream_id: str, upserted: list[Product], deleted: list[str]) -> Job:
        async def push() -> None:
            await self.runner.push_products(stream_id, upserted, deleted)

        return push

    # --- events -----------------------------------------------------------------------------

    def on_event(self, event: StreamEvent) -> None:
        """The runner's event callback: queue the database write."""
        command = event.detail.get("command") if event.kind == "command" else None
        if isinstance(command, Mapping) and command.get("type") in _UNRECORDED_COMMANDS:
            return
        if event.kind == "answers":  # a queue's state for the consoles, not history
            self.notify(event)
            return
        if event.kind not in ("line", "refusal"):
            log.info("stream %s: %s %s", event.stream_id, event.kind, dict(event.detail))
        self.notify(event)
        if event.kind in ("started", "restarted") and self.watch is not None:
            if self.watch.in_safe_mode(event.stream_id):  # a new worker starts selling
                reason = self.watch.slate_reason(event.stream_id)
                self._jobs.put_nowait(self._sender(event.stream_id, _safe(True, reason)))

        self.unwritten.add(event)
        self._jobs.put_nowait(self.unwritten.write)

    def write_held_events(self) -> None:
        """Write the events held while the database was away (``control/dbwatch``)."""
        self._jobs.put_nowait(self.unwritten.write)

    def notify(self, event: StreamEvent) -> None:
        """Tell the listeners; one that fails is logged and the others still hear."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("stream event listener failed")

    def tenant_of(self, stream_id: str) -> str | None:
        selection = self._selections.get(stream_id)
        return selection.tenant_id if selection is not None else None

    def _write_events(self, events: Sequence[StreamEvent]) -> None:
        with self.sessions() as session:
            for event in events:
                self._add_event(session, event)
            session.commit()

    @staticmethod
    def _add_event(session: Session, event: StreamEvent) -> None:
        if event.kind == "line":
            session.add(_transcript_line(event))
        elif event.kind == "refusal":
            audit_system(
                session,
                tenant_id=event.tenant_id,
                stream_id=event.stream_id,
                part="guardrails",
                kind="guardrail_refusal",
                detail=dict(event.detail),
            )
        else:
            record_event(
                session,
                tenant_id=event.tenant_id,
                stream_id=event.stream_id,
                kind=event.kind,
                detail=dict(event.detail),
            )
            if event.kind in _STATE_EVENTS:
                audit_system(
                    session,
                    tenant_id=event.tenant_id,
                    stream_id=event.stream_id,
                    part="runner",
                    kind=f"stream_{event.kind}",
                    detail=dict(event.detail),
                )

    # --- live changes -------------------------------------------------------------------------

    async def send_command(self, stream_id: str, command: Command) -> None:
        """Hand a running stream one typed command (applied at its next frame boundary)."""
        if stream_id in self.runner.running():
            await self.runner.send(stream_id, command_to_wire(command))

    async def seller_changed(self, tenant_id: str, seller: tuple[str, str] | None) -> None:
        """The tenant's seller changed: every stream of it on air shows the new panel."""
        command = SellerChanged(name=seller[0], contact=seller[1]) if seller else SellerChanged()
        running = set(self.runner.running())
        for stream_id, sel in list(self._selections.items()):
            if sel.tenant_id == tenant_id and stream_id in running:
                await self.runner.send(stream_id, command_to_wire(command))

    def _sender(self, stream_id: str, command: Mapping[str, Any]) -> Job:
        async def send() -> None:
            await self.runner.send(stream_id, command)

        return send

    # --- supervision ------------------------------------------------------------------------

    async def supervise(self, interval: float) -> None:
        """Tick the heartbeat watch forever and carry out what falls due."""
        while True:
            await asyncio.sleep(interval)
            await self.apply_supervision()

    async def apply_supervision(self) -> list[SupervisionAction]:
        if self.watch is None:
            return []
        actions = self.watch.tick()
        for action in actions:
            try:
                await self._apply(action)
            except Exception:
                log.exception("supervision action %s failed", action)
        return actions

    async def _apply(self, action: SupervisionAction) -> None:
        sid = action.stream_id
        tenant_id = self.tenant_of(sid)
        if tenant_id is not None:
            detail: dict[str, Any] = {"silent_s": round(action.silent_s, 3)}
            if action.reason is not None:
                detail["reason"] = action.reason
            self.notify(
                StreamEvent(stream_id=sid, tenant_id=tenant_id, kind=action.kind, detail=detail)
            )
        if action.kind == "safe_mode_entered":
            await self.runner.send(sid, _safe(True, action.reason))
        elif action.kind == "safe_mode_left":
            await self.runner.send(sid, _safe(False))
        await asyncio.to_thread(self._record_supervision, action)
        if action.kind == "stop":
            await self.reconcile(sid)

    def _record_supervision(self, action: SupervisionAction) -> None:
        """Audit what the watch did; a lapse that ends the stream sets it to stopped."""
        with self.sessions() as session:
            row = session.get(StreamRow, action.stream_id)
            if row is None:
                return
            detail: dict[str, Any] = {"silent_s": round(action.silent_s, 3)}
            if action.reason is not None:
                detail["reason"] = action.reason
            if self.watch is not None:
                detail["timeout_s"] = self.watch.timeout_s
            if action.kind == "stop":
                detail["from"], detail["to"] = row.desired_state, "stopped"
                detail["reason"] = "supervisor heartbeats lapsed"
                row.desired_state, row.updated_at = "stopped", utcnow()
                record_event(
                    session, tenant_id=row.tenant_id, stream_id=row.id, kind="stop", detail=detail
                )
            kind = "supervision_stop" if action.kind == "stop" else action.kind
            audit_system(
                session,
                tenant_id=row.tenant_id,
                stream_id=row.id,
                part="supervision",
                kind=kind,
                detail=detail,
            )
            session.commit()

    async def run(self) -> None:
        """Work off queued jobs until :meth:`close` queues the end."""
        while (job := await self._jobs.get()) is not None:
            try:
                await job()
            except Exception:
                log.exception("stream manager job failed")

    async def publish_metrics(self, metrics: ControlMetrics, interval: float = 1.0) -> None:
        """Copy each running stream's health into the Prometheus gauges, forever."""
        reconnects: dict[tuple[str, str], int] = {}
        shown: set[str] = set()
        while True:
            states: Counter[tuple[str, str]] = Counter()
            running = set(self.runner.running())
            for stream_id in running:
                status = self.runner.status(stream_id)
                selection = self._selections.get(stream_id)
                if status is None or selection is None:
                    continue
                states[(selection.tenant_id, status.state)] += 1
                _set_gauges(metrics, stream_id, status.health, reconnects)
            for gone in shown - running:
                metrics.forget_stream(gone)
            shown = running
            metrics.streams.clear()
            for (tenant_id, state), n in states.items():
                metrics.streams.labels(tenant_id, state).set(n)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Drain the runner (streams on a cluster go on), keep the events they report,
        release the leases of the streams that ended, then end :meth:`run`."""
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()
        self._unsubscribe.clear()
        await self.runner.drain()
        if self.leases is not None:  # another process may take them over at once
            still = set(self.runner.running())  # on a cluster, streams outlive the API
            try:
                await asyncio.to_thread(self._release_leases, still)
            except Exception:
                log.exception("could not release this process's stream leases")
        self._jobs.put_nowait(None)

    def _release_leases(self, keep: set[str]) -> None:
        assert self.leases is not None
        if not keep:
            self.leases.release()
            return
        self.leases.release(set(self.leases.owned()) - keep)


def _set_gauges(
    metrics: ControlMetrics,
    stream_id: str,
    health: LiveStatus | None,
    reconnects: dict[tuple[str, str], int],
) -> None:
    if health is None:  # nothing reported yet by this run's worker
        return
    metrics.stream_fps.labels(stream_id).set(health.fps)
    metrics.stream_encode_lag.labels(stream_id).set(health.encode_lag_ms / 1000)
    metrics.stream_av_offset.labels(stream_id).set(health.av_offset_ms / 1000)
    # labelled by position in the stream's destination list, never by URL: a host (or a key
    # in a path) must not reach whoever can read the metrics
    for i, dest in enumerate(health.destinations):
        name, count = str(i), dest.reconnects
        before = reconnects.get((stream_id, name), 0)
        if count > before:
            metrics.stream_reconnects.labels(stream_id, name).inc(count - before)
        reconnects[(stream_id, name)] = count
    monitors = health.monitors
    for key, counter in (
        ("glitches", metrics.stream_glitches),
        ("remedies", metrics.stream_remedies),
    ):
        for name, raw in (monitors.get(key) or {}).items():
            count, seen = int(raw), (stream_id, f"{key}:{name}")
            before = reconnects.get(seen, 0)
            # a restarted worker counts from 0 again: all it reports is new
            counter.labels(stream_id, str(name)).inc(count - before if count >= before else count)
            reconnects[seen] = count


#: applied commands not written to the stream's events: each has a record of its own (chat
#: fates, product rows, and the start/stop/pause/resume events the API writes)
_UNRECORDED_COMMANDS = frozenset({"chat", "products", "stop", "pause", "resume"})


def _safe(on: bool, reason: str | None = None) -> dict[str, Any]:
    """The slate command; ``reason`` ``no_supervisor``: "waiting for a supervisor" words."""
    return command_to_wire(SafeMode(on=on, reason=reason if on else None))


def _transcript_line(event: StreamEvent) -> TranscriptLine:
    d = event.detail
    wall = d.get("wall")
    return TranscriptLine(
        tenant_id=event.tenant_id,
        stream_id=event.stream_id,
        run=int(d.get("run") or 0),
        t=float(d.get("t") or 0.0),
        wall_time=datetime.fromtimestamp(float(wall), UTC) if wall else utcnow(),
        text=str(d.get("text", "")),
        source=str(d.get("source", "")),
        product_id=d.get("product_id"),
        facts=list(d.get("facts") or ()),
        verdicts=dict(d.get("verdicts") or {}),
    )


def _selection(row: StreamRow) -> _Selection:
    ids = frozenset(row.product_ids) if row.product_ids is not None else None
    waiting = row.duty_supervisor_id is None or row.heartbeat_at is None
    return _Selection(row.tenant_id, ids, waiting)


def selected_products(
    session: Session, tenant_id: str, product_ids: Sequence[str] | None
) -> list[Product]:
    """The tenant's products in rundown order: the given ids' order, else insertion order."""
    query = select(ProductRow).where(ProductRow.tenant_id == tenant_id)
    if product_ids is not None:
        query = query.where(ProductRow.product_id.in_(list(product_ids)))
    rows = {r.product_id: r for r in session.scalars(query.order_by(ProductRow.pk))}
    order = list(product_ids) if product_ids is not None else list(rows)
    return [to_product(rows[i]) for i in order if i in rows]
