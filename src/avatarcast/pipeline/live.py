"""Live: the programme on the wall clock, to RTMP destinations, WHEP viewers and a recording.

One encode per frame shape feeds every output of that shape. A destination may ask for its
own layout (``destination_layouts``: a portrait ``720x1280/tiktok`` beside the landscape
programme); each distinct layout is drawn from the same plan and encoded once, and the
recording and WHEP take the programme's own layout. A destination that fails is retried by its
own sink without stalling the programme or the others; the recording never waits on the
network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarcast.catalog.model import Product
from avatarcast.clock import WallClock
from avatarcast.compliance.c2pa import SignerConfig, segment_signer
from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import ProgrammeFrame
from avatarcast.netpolicy import NetPolicy
from avatarcast.output.base import Sink
from avatarcast.output.hls import HlsOptions, HlsSink
from avatarcast.output.recording import SegmentedRecorder
from avatarcast.output.rtmp import RtmpSink, redact_url
from avatarcast.output.whep import IceServer
from avatarcast.output.whep_process import WhepProcess
from avatarcast.pipeline.build import (
    Built,
    ProgrammeOptions,
    build,
    label_config,
    seller_info,
    validate,
)
from avatarcast.pipeline.chat import ProgrammeChat
from avatarcast.pipeline.frame_loop import FrameLoop, FrameTap, ViewOutput
from avatarcast.pipeline.layouts import make_view, view_format
from avatarcast.pipeline.live_control import LiveControl, LiveStatus
from avatarcast.programme.layout import Layout, parse_layout
from avatarcast.programme.talk import Guard
from avatarcast.threads import in_background

# LiveControl and LiveStatus are defined in live_control; callers import them from here too
__all__ = ["LiveControl", "LiveOptions", "LiveStatus", "run_live"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveOptions:
    programme: ProgrammeOptions
    destinations: tuple[str, ...] = ()
    #: per destination, its layout (``SIZE/PRESET``); missing or None: the programme's own
    destination_layouts: tuple[str | None, ...] = ()
    record_dir: Path | None = None
    segment_seconds: float = 600.0
    whep_port: int | None = None
    whep_host: str = "127.0.0.1"
    whep_token: str | None = None
    duration: float | None = None
    start_at: float = 0.0
    ice_servers: tuple[Mapping[str, Any], ...] = ()
    #: sign each closed recording segment with a C2PA manifest (None: not signed)
    c2pa: SignerConfig | None = None
    #: speak a short AI disclosure at the start of each answer to a viewer
    disclose_answers: bool = False
    #: write HLS (a playlist and its segments) into this folder (None: no HLS)
    hls_dir: Path | None = None
    hls: HlsOptions = field(default_factory=HlsOptions)
    backoff_start: float = 1.0
    backoff_cap: float = 10.0
    #: which addresses destinations may reach, checked at every connect (None: any)
    net_policy: NetPolicy | None = None
    #: PEM certificates trusted for rtmps on top of the system CA bundle
    ca_file: str | None = None


class _PcmTap:
    """Hands each frame's PCM to the WHEP sink, which encodes Opus once for all viewers."""

    def __init__(self, sink: WhepProcess) -> None:
        self._sink = sink

    def on_frame(self, frame: ProgrammeFrame) -> None:
        self._sink.push_pcm(frame.pcm, pts=frame.pts * len(frame.pcm))


async def run_live(
    opts: LiveOptions,
    *,
    products: list[Product] | None = None,
    control: LiveControl | None = None,
    on_status: Callable[[LiveStatus], None] | None = None,
    status_interval: float = 1.0,
    on_air: Callable[[], None] | None = None,
) -> LiveStatus:
    """Run the programme live until ``opts.duration`` passes or ``control.stop()``.

    ``on_air`` is called once everything is built and warmed up, just before the clock starts
    (the CLI gives back its machine-wide start-up slot there).
    """
    control = control or LiveControl()
    resolved = await in_background(validate, opts.programme, products)
    fmt = resolved.fmt
    main = Layout(opts.programme.size, opts.programme.preset)
    wanted = destination_layouts(opts, main)
    sinks: list[Sink] = []
    taps: list[FrameTap] = []
    by_layout: dict[Layout, list[Sink]] = {}
    for url, layout in zip(opts.destinations, wanted, strict=True):
        try:
            sink = RtmpSink(
                url,
                metadata=fmt.metadata,
                backoff_start=opts.backoff_start,
                backoff_cap=opts.backoff_cap,
                name=redact_url(url),
                policy=opts.net_policy,
                ca_file=opts.ca_file,
            )
            control.add_destination(sink, layout=layout.name)
            if layout == main:
                sinks.append(sink)
            else:
                by_layout.setdefault(layout, []).append(sink)
        except ConfigError as e:
            # one bad destination must not keep the others (or the recording) off air
            log.error("destination %s refused: %s", redact_url(url), e)
            control.refuse_destination(redact_url(url), str(e))
    extra_sinks = [s for group in by_layout.values() for s in group]
    if opts.record_dir is not None:
        sinks.append(
            SegmentedRecorder(
                opts.record_dir,
                segment_seconds=opts.segment_seconds,
                metadata=fmt.metadata,
                on_segment_closed=segment_signer(opts.c2pa) if opts.c2pa else None,
            )
        )
        control.set_recording(str(opts.record_dir))
    if opts.hls_dir is not None:
        hls = HlsSink(opts.hls_dir, options=opts.hls, metadata=fmt.metadata)
        control.set_hls(hls)
        sinks.append(hls)
    if opts.whep_port is not None:
        whep = WhepProcess(
            host=opts.whep_host,
            port=opts.whep_port,
            token=opts.whep_token,
            ice_servers=tuple(_ice(s) for s in opts.ice_servers),
        )
        try:
            control.set_whep(url=await whep.start())
        except OutputError as e:
            log.error("WHEP is off: %s", e)
            control.set_whep(error=str(e))
        else:
            sinks.append(whep)
            taps.append(_PcmTap(whep))
    guards: list[Guard] = []  # the chat's guard wraps the stream's, bound once built
    try:
        for rtmp in control.destinations:
            await rtmp.prestart()  # their start-up overlaps with building the programme
        # built at low priority, so other streams' frames on this machine stay on time
        built = await in_background(
            build, resolved, live=True, guard=lambda s, p, t: guards[0](s, p, t)
        )
        views = await in_background(_views, built, by_layout)
    except BaseException:
        for opened in [*sinks, *extra_sinks]:
            await opened.aclose()
        raise
    wall = WallClock()
    chat = ProgrammeChat(
        built,
        disclosure=opts.disclose_answers,
        llm=opts.programme.llm,
        clock=lambda: opts.start_at + wall.now(),  # media seconds between frames too
    )
    guards.append(chat.guard(built.script.guard if built.script is not None else None))
    built.listeners.extend(control.line_listeners)
    await in_background(_warm_up, built)
    loop = FrameLoop(
        programme=built.programme,
        compose=built.compositor,
        encoder=built.encoder,
        sinks=sinks,
        clock=wall,
        start_pts=round(opts.start_at * fmt.fps),
        director=control.director,
        before_frame=_chat_hook(chat),
        views=views,
        taps=taps,
    )
    control.attach(built, chat, loop, layout=main.name)
    frames = round(opts.duration * fmt.fps) if opts.duration is not None else None
    if on_air is not None:
        on_air()
    control.set_phase("live")
    try:
        await built.start()  # the LLM lookahead, when --writer llm
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(built.talk.run_prefetch())
            reporter = tg.create_task(_report(control, on_status, status_interval))
            answers = tg.create_task(chat.desk.run())
            try:
                await loop.run(frames=frames)
            finally:
                prefetch.cancel()
                reporter.cancel()
                answers.cancel()
        control.set_phase("stopped")
    except BaseException:
        control.set_phase("failed")
        raise
    finally:
        await loop.close_sinks()
        await built.aclose()
    final = control.status()
    if on_status is not None:
        on_status(final)
    return final


def destination_layouts(opts: LiveOptions, main: Layout) -> list[Layout]:
    """Each destination's layout, checked before anything starts (a ConfigError names it)."""
    given = list(opts.destination_layouts)
    if len(given) > len(opts.destinations):
        raise ConfigError(
            f"{len(given)} destination layouts for {len(opts.destinations)} destinations"
        )
    given += [None] * (len(opts.destinations) - len(given))
    return [main if g is None else parse_layout(g, default_preset=main.preset) for g in given]


def _views(built: Built, by_layout: Mapping[Layout, list[Sink]]) -> list[ViewOutput]:
    """A renderer, compositor and encoder per extra layout, warmed up like the main one."""
    from avatarcast.avatar.base import AvatarState
    from avatarcast.output.encoder import Encoder
    from avatarcast.yuv import YuvFrame

    opts = built.resolved.opts
    # the same sound in every shape: one AAC encode, the main encoder's (when it is in-thread)
    main_encoder = built.encoder if isinstance(built.encoder, Encoder) else None
    out: list[ViewOutput] = []
    for layout, group in by_layout.items():
        view = make_view(
            built.pack,
            layout,
            fmt=built.fmt,
            lang=opts.lang,
            label=label_config(opts),
            seller=seller_info(opts),
        )
        frame = YuvFrame(layout.width, layout.height)
        view.compositor.compose(
            frame, state=AvatarState(), product=built.programme.current_product, caption=None
        )
        out.append(
            ViewOutput(
                name=layout.name,
                compose=view.compositor,
                encoder=Encoder(view_format(built.fmt, layout), audio_from=main_encoder),
                sinks=group,
                width=layout.width,
                height=layout.height,
            )
        )
    return out


def _chat_hook(chat: ProgrammeChat) -> Callable[[int], Awaitable[None]]:
    async def before_frame(pts: int) -> None:
        chat.before_frame(pts)

    return before_frame


def _warm_up(built: Built) -> None:
    """Draw one frame before the clock starts, so the first due frame is not late."""
    from avatarcast.avatar.base import AvatarState
    from avatarcast.yuv import YuvFrame

    fmt = built.fmt
    frame = YuvFrame(fmt.width, fmt.height)
    built.compositor.compose(
        frame, state=AvatarState(), product=built.programme.current_product, caption=None
    )


def _ice(spec: Mapping[str, Any]) -> IceServer:
    urls = spec.get("urls", ())
    return IceServer(
        urls=(urls,) if isinstance(urls, str) else tuple(urls),
        username=spec.get("username"),
        credential=spec.get("credential"),
    )


async def _report(
    control: LiveControl, on_status: Callable[[LiveStatus], None] | None, interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        status = control.status()
        if on_status is not None:
            on_status(status)
        else:
            log.info(
                "live: %s frames, %.1f fps, product %s; %s",
                status.frames,
                status.fps,
                status.product_id,
                ", ".join(f"{d.name} {d.state}" for d in status.destinations) or "-",
            )
