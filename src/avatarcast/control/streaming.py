"""The stream runner's place in the app: started and drained with it, reached by the routes.

:func:`lifespan` owns the stream runner (``control.backends``) and its :class:`StreamManager`
for the app's life (``routes/streams.py`` hands it to the app factory); routes reach the
manager through :func:`manager_of` and a stream's live health through :func:`health_of`,
neither of which waits on a worker.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from avatarcast.commands import Command
from avatarcast.control.backends import open_runner
from avatarcast.control.context import AppContext
from avatarcast.control.images import ImageStore
from avatarcast.control.leader import replica_id
from avatarcast.control.leases import StreamLeases
from avatarcast.control.manager import ProgrammeDefaults, StreamManager
from avatarcast.control.problems import ProblemError
from avatarcast.control.schemas.streams import (
    DestinationHealth,
    HlsHealth,
    LayoutHealth,
    MouthHealth,
    StreamHealth,
)
from avatarcast.control.supervision import SupervisionWatch
from avatarcast.output.hls import HlsStatus
from avatarcast.runner.base import SharedRunner, StreamRunner
from avatarcast.script.llm import LlmOptions

__all__ = [
    "EXTRAS_KEY",
    "health_of",
    "lifespan",
    "manager_of",
    "programme_defaults",
    "tell_stream",
    "tell_tenant_seller",
]

EXTRAS_KEY = "streams"
#: ``ctx.extras`` list of stream event listeners that lifespans entered before this one
#: register (the webhooks); they hear every event from the first restored stream on
EVENT_LISTENERS_KEY = "event_listeners"
#: stream event kinds not counted in ``avatarcast_stream_events`` (one per sentence/command)
_UNCOUNTED = frozenset({"line", "refusal", "command"})
log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Own the runner: restore streams that should be live, drain them all at shutdown."""
    holder: list[StreamManager] = []
    runner_cm = open_runner(
        ctx.settings.runner,
        on_event=lambda e: holder[0].on_event(e),
        on_output=lambda e: holder[0].on_event(e),
    )
    async with runner_cm as runner:
        async with _managed(ctx, runner, holder):
            yield


@asynccontextmanager
async def _managed(
    ctx: AppContext, runner: StreamRunner, holder: list[StreamManager]
) -> AsyncIterator[None]:
    policy = ctx.settings.supervision
    watch = SupervisionWatch(timeout_s=policy.heartbeat_timeout_s, stop_after_s=policy.stop_after_s)
    manager = StreamManager(
        sessions=ctx.sessions,
        runner=runner,
        hub=ctx.hub,
        defaults=programme_defaults(ctx),
        watch=watch,
        open_secret=ctx.secrets.open,
        live_limit=ctx.settings.quotas.live_streams,
        leases=StreamLeases(
            ctx.sessions, replica=replica_id(), ttl_s=ctx.settings.scheduler.lease_ttl_s
        ),
    )
    holder.append(manager)
    manager.listeners.extend(ctx.extras.get(EVENT_LISTENERS_KEY, ()))
    manager.listeners.append(lambda e: _count(ctx, e.kind))
    ctx.extras[EXTRAS_KEY] = manager
    async with asyncio.TaskGroup() as tg:
        tg.create_task(manager.run())
        gauges = tg.create_task(manager.publish_metrics(ctx.metrics))
        supervision = tg.create_task(manager.supervise(policy.check_interval_s))
        await manager.restore()
        leases = tg.create_task(keep_leases(manager, ctx.settings.scheduler.lease_ttl_s / 3))
        try:
            yield
        finally:
            leases.cancel()
            gauges.cancel()
            supervision.cancel()
            await manager.close()


def _count(ctx: AppContext, kind: str) -> None:
    if kind not in _UNCOUNTED:
        ctx.metrics.stream_events.labels(kind).inc()


async def keep_leases(manager: StreamManager, interval: float) -> None:
    """Forever: renew the leases of the streams this process runs (stopping one another
    process took), apply to ours a stop, pause or resume made through another process, and
    take over the streams on air whose process died. A failing round is logged; the next
    one comes."""
    leases = manager.leases
    assert leases is not None
    seen: dict[str, str] = {}
    while True:
        await asyncio.sleep(interval)
        try:
            seen = await _lease_round(manager, leases, seen)
        except Exception:
            log.exception("stream lease round failed")


async def _lease_round(
    manager: StreamManager, leases: StreamLeases, seen: dict[str, str]
) -> dict[str, str]:
    """One round; ``seen`` is each owned stream's desired state at the last round, and the
    new one is returned: a stream whose desired state changed is reconciled here."""
    running = manager.runner.running()
    for stream_id in await asyncio.to_thread(leases.renew, running):
        if await asyncio.to_thread(leases.claim, stream_id) is not None:
            if isinstance(manager.runner, SharedRunner):  # one actor per stream: none twice
                continue  # (a restarted API's last leases): claimed once they expire
            log.warning("stream %s: lease taken by another replica; stopping it here", stream_id)
            await manager.runner.stop(stream_id)
    owned = await asyncio.to_thread(leases.owned)
    for stream_id, desired in owned.items():
        if seen.get(stream_id, desired) != desired:  # set through another process
            await manager.reconcile(stream_id)
    for stream_id in await asyncio.to_thread(leases.orphans):
        if stream_id not in manager.runner.running():
            log.warning("stream %s has no live owner: taking it over", stream_id)
            await manager.reconcile(stream_id)
    return owned


def programme_defaults(ctx: AppContext) -> ProgrammeDefaults:
    stream = ctx.settings.stream
    ice = tuple(
        {
            "urls": s.urls,
            "username": s.username,
            "credential": s.credential.get_secret_value() if s.credential else None,
        }
        for s in ctx.settings.whep.ice_servers
    )
    llm = ctx.settings.llm
    return ProgrammeDefaults(
        llm=LlmOptions.from_section(llm) if llm.base_url else None,
        recordings_dir=ctx.settings.recordings_dir.resolve(),
        hls_dir=ctx.settings.hls.dir.resolve(),
        size="1080p" if stream.height >= 1080 else "720p",
        fps=stream.fps if stream.fps in (25, 30) else 25,
        ice_servers=ice,
        net_policy=ctx.settings.api.net_policy().to_json(),
        ca_file=str(ca.resolve()) if (ca := ctx.settings.tls.ca_file) else None,
        images=ImageStore.from_settings(ctx.settings),
        monitors=ctx.settings.monitors,
    )


def manager_of(ctx: AppContext) -> StreamManager:
    manager: StreamManager | None = ctx.extras.get(EXTRAS_KEY)
    if manager is None:
        raise ProblemError(503, "the stream runner is not running", kind="not-ready")
    return manager


def tell_stream(ctx: AppContext, stream_id: str, command: Command) -> None:
    """Hand a running stream a command from a sync route; nothing when no runner runs."""
    manager: StreamManager | None = ctx.extras.get(EXTRAS_KEY)
    if manager is not None:
        anyio.from_thread.run(manager.send_command, stream_id, command)


def tell_tenant_seller(ctx: AppContext, tenant_id: str, seller: tuple[str, str] | None) -> None:
    """The tenant's seller changed: its streams on air show the new panel from the next frame."""
    manager: StreamManager | None = ctx.extras.get(EXTRAS_KEY)
    if manager is not None:
        anyio.from_thread.run(manager.seller_changed, tenant_id, seller)


def health_of(ctx: AppContext, stream_id: str) -> StreamHealth:
    manager = ctx.extras.get(EXTRAS_KEY)
    status = manager.runner.status(stream_id) if manager is not None else None
    chats = ctx.extras.get("chat_sources")
    chat = chats.streams.get(stream_id) if chats is not None else None
    chat_health = chat.health() if chat is not None else None
    if status is None:
        return StreamHealth(state="stopped", chat=chat_health)
    h = status.health
    if h is None:  # the worker of this run has not reported yet
        return StreamHealth(
            state=status.state,
            restarts=status.restarts,
            node=status.node,
            last_error=without_paths(status.last_error),
            chat=chat_health,
        )
    return StreamHealth(
        state=status.state,
        restarts=status.restarts,
        node=status.node,
        uptime_s=h.uptime_s,
        frames=h.frames,
        fps=h.fps,
        av_offset_ms=h.av_offset_ms,
        encode_lag_ms=h.encode_lag_ms,
        late_frames=h.late_frames,
        product_id=h.product_id,
        price=h.price,
        sentence=h.sentence,
        slate=h.slate,
        destinations=[
            DestinationHealth.model_validate(d).model_copy(
                update={"last_error": without_paths(d.last_error)}
            )
            for d in h.destinations
        ],
        layouts=[LayoutHealth.model_validate(x) for x in h.layouts],
        recording=bool(h.recording_dir),
        hls=_hls_health(h.hls),
        mouth=_mouth_health(h.mouth),
        chat=chat_health,
        last_error=without_paths(status.last_error),
    )


_SERVER_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+-]+/)*[\w.@+-]+/?")


def _hls_health(raw: HlsStatus | None) -> HlsHealth | None:
    """The worker's HLS report, its error without the server's folder in it."""
    if raw is None:
        return None
    health = HlsHealth.model_validate(raw)
    return health.model_copy(update={"last_error": without_paths(raw.last_error)})


def _mouth_health(raw: dict[str, Any] | None) -> MouthHealth | None:
    """The twin's mouth engine from the worker's report (its own fields, nothing else)."""
    if not raw or not isinstance(raw.get("engine"), str):
        return None
    fields = {k: raw[k] for k in ("engine", "model", "miss_rate", "fallbacks") if k in raw}
    return MouthHealth.model_validate(fields)


def without_paths(text: str | None) -> str | None:
    """``text`` with absolute file paths replaced: the server's layout is not the tenant's
    business (OWASP API3:2023), and a path can name another tenant's folder."""
    return _SERVER_PATH.sub("<server path>", text) if text else text
