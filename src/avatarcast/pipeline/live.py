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
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarcast import trace
from avatarcast.avatar.twin.load import Twin
from avatarcast.catalog.model import Product
from avatarcast.clock import WallClock
from avatarcast.compliance.c2pa import SignerConfig, segment_signer
from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import ProgrammeFrame
from avatarcast.monitor.watch import OnAirWatch, OutputProgress
from avatarcast.netpolicy import NetPolicy
from avatarcast.output._forked_child import ChildForker
from avatarcast.output.base import Sink
from avatarcast.output.hls import HlsOptions, HlsSink
from avatarcast.output.ice import IceServer
from avatarcast.output.recording import SegmentedRecorder
from avatarcast.output.recording_guard import GuardedRecorder
from avatarcast.output.rtmp import RtmpSink, redact_url
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
from avatarcast.pipeline.faults import FaultInjector
from avatarcast.pipeline.frame_loop import FrameLoop, FrameTap, ViewOutput
from avatarcast.pipeline.layouts import make_view, view_format
from avatarcast.pipeline.live_control import LiveControl, LiveStatus
from avatarcast.pipeline.remedies import EngineSwitch, StreamActions
from avatarcast.pipeline.writer_watch import WriterWatch
from avatarcast.programme.layout import Layout, parse_layout
from avatarcast.programme.talk import Guard
from avatarcast.settings import MonitorSettings
from avatarcast.threads import in_background, trim_heap

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
    #: the on-air monitors' thresholds (None: no monitors)
    monitors: MonitorSettings | None = None
    #: a worker forked from the zygote: its link there, which forks the RTMP push and WHEP
    #: children too (None: they start as fresh interpreters)
    children: ChildForker | None = None


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
    if control.stop_requested:
        return _stopped_before_air(control, on_status)
    fmt = resolved.fmt
    main = Layout(opts.programme.size, opts.programme.preset)
    wanted = destination_layouts(opts, main)
    sinks: list[Sink] = []
    taps: list[FrameTap] = []
    by_layout: dict[Layout, list[Sink]] = {}
    guarded: GuardedRecorder | None = None
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
                children=opts.children,
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
        record_dir = opts.record_dir

        def recorder() -> SegmentedRecorder:
            return SegmentedRecorder(
                record_dir,
                segment_seconds=opts.segment_seconds,
                metadata=fmt.metadata,
                on_segment_closed=segment_signer(opts.c2pa) if opts.c2pa else None,
            )

        # a full disk stops the recording, not the stream (recording_stopped/_resumed events)
        guarded = GuardedRecorder(recorder, dir=record_dir, on_change=control.recording_changed)
        sinks.append(guarded)
        control.set_recording(str(opts.record_dir))
    if opts.hls_dir is not None:
        hls = HlsSink(opts.hls_dir, options=opts.hls, metadata=fmt.metadata)
        control.set_hls(hls)
        sinks.append(hls)
    whep = None
    if opts.whep_port is not None:
        whep = WhepProcess(
            host=opts.whep_host,
            port=opts.whep_port,
            token=opts.whep_token,
            ice_servers=tuple(_ice(s) for s in opts.ice_servers),
            children=opts.children,
        )
    guards: list[Guard] = []  # the chat's guard wraps the stream's, bound once built
    try:
        for rtmp in control.destinations:
            await rtmp.prestart()  # their start-up overlaps with building the programme
        async with asyncio.TaskGroup() as tg:
            # the WHEP child's start-up (a Python process importing aiortc, seconds on a busy
            # machine) overlaps with the build too: a restarted stream is back on air sooner
            whep_up = tg.create_task(_start_whep(whep, control)) if whep is not None else None
            # built at low priority, so other streams' frames on this machine stay on time
            built = await in_background(
                build, resolved, live=True, guard=lambda s, p, t: guards[0](s, p, t)
            )
            views = await in_background(_views, built, by_layout)
        if whep is not None and whep_up is not None and whep_up.result():
            sinks.append(whep)
            taps.append(_PcmTap(whep))
    except BaseException:
        await _close_unused(sinks, extra_sinks, whep)
        raise
    if control.stop_requested:
        # a stop during the build or the WHEP child's start (a restarted worker told to end,
        # serve draining): the warm-up and the first frames would only delay the exit
        await built.aclose()
        await _close_unused(sinks, extra_sinks, whep)
        return _stopped_before_air(control, on_status)
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
    faults, watch = _monitors(opts, built, control, guarded)
    if watch is not None:
        sinks.append(watch)
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
        faults=faults,
        taps=taps,
    )
    actions = StreamActions(
        built=built,
        loop=loop,
        restart_worker=control.restart_in_place,
        faults=faults,
        engines=_fallback_engines(built),
    )
    control.attach(built, chat, loop, layout=main.name, actions=actions, watch=watch)
    frames = round(opts.duration * fmt.fps) if opts.duration is not None else None
    if on_air is not None:
        on_air()
    control.set_phase("live")
    try:
        await built.start()  # the LLM lookahead, when --writer llm
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(built.talk.run_prefetch())
            ticks = _writer_ticks(built, control)
            reporter = tg.create_task(_report(control, on_status, status_interval, ticks))
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
    return _final_status(control, on_status)


async def _close_unused(sinks: list[Sink], extra: list[Sink], whep: WhepProcess | None) -> None:
    """Close the outputs opened for a run that will not go on air."""
    spare = [whep] if whep is not None and whep not in sinks else []
    for opened in [*sinks, *extra, *spare]:
        await opened.aclose()


def _stopped_before_air(
    control: LiveControl, on_status: Callable[[LiveStatus], None] | None
) -> LiveStatus:
    log.info("stopped before going on air")
    control.set_phase("stopped")
    return _final_status(control, on_status)


def _final_status(
    control: LiveControl, on_status: Callable[[LiveStatus], None] | None
) -> LiveStatus:
    """The run's last status, told to ``on_status`` too."""
    final = control.status()
    if on_status is not None:
        on_status(final)
    return final


async def _start_whep(whep: WhepProcess, control: LiveControl) -> bool:
    try:
        control.set_whep(url=await whep.start())
    except OutputError as e:
        log.error("WHEP is off: %s", e)
        control.set_whep(error=str(e))
        return False
    return True


def _fallback_engines(built: Built) -> dict[str, EngineSwitch]:
    """The parts a ``switch_engine`` remedy can fall back: a twin's ``onnx`` mouth engine
    (to the pack's ``patches``); nothing else has a fallback to switch to yet."""
    if isinstance(built.pack, Twin) and isinstance(built.pack.engine, EngineSwitch):
        return {"avatar": built.pack.engine}
    return {}


def _monitors(
    opts: LiveOptions, built: Built, control: LiveControl, recording: GuardedRecorder | None
) -> tuple[FaultInjector | None, OnAirWatch | None]:
    """The stream's on-air monitors (a sink beside the outputs) and, in drills, its faults.
    A recording its guard has stopped (a full disk: reported as ``recording_stopped``) is not
    watched for stalls until it resumes: restarting the worker would not make space."""
    settings = opts.monitors
    if settings is None:
        return None, None
    fmt = built.fmt
    faults = None
    if settings.fault_injection:
        faults = FaultInjector(fps=fmt.fps, samples_per_frame=fmt.samples_per_frame)
        faults.bind(built.talk)
        built.listeners.append(faults.on_line)
    if not settings.enabled:
        return faults, None

    def outputs() -> list[OutputProgress]:
        return [
            OutputProgress(st["name"], int(st["bytes_sent"]), st["state"] == "connected")
            for st in (d.status() for d in control.destinations)
        ]

    watch = OnAirWatch(
        settings,
        fps=fmt.fps,
        sample_rate=fmt.sample_rate,
        state=built.programme,
        emit=control.monitor_event,
        submit=lambda cmd, done: control.submit(cmd, on_done=done),
        mouth_box=built.renderer.mouth_box(),
        outputs=outputs,
        recording_dir=opts.record_dir,
        recording_on=(lambda: recording.recording) if recording is not None else None,
    )
    built.listeners.append(lambda line: watch.line(line.text, line.t))
    return faults, watch


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


#: seconds between giving the heap's free memory back to the kernel (``threads.trim_heap``)
TRIM_EVERY_S = 60.0
#: seconds from going live to the first status report. The runner counts a stream on air
#: (``live``) from that report; a whole interval (1 s) was part of the heal time after a
#: SIGKILL (``benchmarks/heal_time.py``). By then the first frames are out.
FIRST_REPORT_S = 0.2


def _writer_ticks(built: Built, control: LiveControl) -> list[Callable[[], None]]:
    """The LLM writer's fallback and recovery as stream events (``WriterWatch``)."""
    llm = built.script.llm if built.script is not None else None
    if llm is None or llm.breaker is None:
        return []

    def emit(kind: str, detail: Mapping[str, Any]) -> None:
        for listener in control.event_listeners:
            listener(kind, detail)

    return [WriterWatch(llm.breaker, llm.failures, emit).check]


async def _report(
    control: LiveControl,
    on_status: Callable[[LiveStatus], None] | None,
    interval: float,
    ticks: Sequence[Callable[[], None]] = (),
) -> None:
    since_trim = 0.0
    wait = min(interval, FIRST_REPORT_S)
    while True:
        await asyncio.sleep(wait)
        since_trim += wait
        wait = interval
        for tick in ticks:
            tick()
        if since_trim >= TRIM_EVERY_S:
            since_trim = 0.0
            await in_background(trim_heap)  # low priority, off the frame threads' way
        t0 = time.time()
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
        trace.record("status", time.time() - t0)
