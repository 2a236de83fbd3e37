"""Live: the programme on the wall clock, to RTMP destinations, WHEP viewers and a recording.

One encode feeds every output. A destination that fails is retried by its own sink without
stalling the programme or the others; the recording never waits on the network.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.chat.message import ChatMessage
from avatarcast.chat.programme import ProgrammeChat
from avatarcast.clock import WallClock
from avatarcast.compliance.c2pa import SignerConfig, segment_signer
from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import ProgrammeFrame
from avatarcast.logs import redact
from avatarcast.output.base import Sink
from avatarcast.output.recording import SegmentedRecorder
from avatarcast.output.rtmp import RtmpSink, redact_url
from avatarcast.output.whep import IceServer
from avatarcast.output.whep_process import WhepProcess
from avatarcast.pipeline.build import Built, ProgrammeOptions, build, validate
from avatarcast.pipeline.runner import ProgrammeRunner
from avatarcast.pipeline.talk import Guard
from avatarcast.programme.programme import SpokenLine
from avatarcast.threads import in_background

log = logging.getLogger(__name__)

Status = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveOptions:
    programme: ProgrammeOptions
    destinations: tuple[str, ...] = ()
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
    backoff_start: float = 1.0
    backoff_cap: float = 10.0


class _PcmTap:
    """Hands each frame's PCM to the WHEP sink, which encodes Opus once for all viewers."""

    def __init__(self, sink: WhepProcess) -> None:
        self.name = "whep-audio"
        self._sink = sink

    async def open(self, headers: Any) -> None:
        return None

    async def write(self, packet: Any) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def on_frame(self, frame: ProgrammeFrame) -> None:
        self._sink.push_pcm(frame.pcm, pts=frame.pts * len(frame.pcm))


@dataclass(slots=True)
class LiveControl:
    """A handle on a running live programme, used from the same event loop."""

    state: str = "starting"
    started_wall: float = 0.0
    _built: Built | None = None
    _runner: ProgrammeRunner | None = None
    _rtmp: list[RtmpSink] = field(default_factory=list)
    _whep_url: str | None = None
    _recording_dir: str | None = None
    _fps_window: tuple[float, int] = (0.0, 0)
    _fps: float = 0.0
    _stop_requested: bool = False
    _bad_destinations: list[Status] = field(default_factory=list)
    _whep_error: str | None = None
    _chat: ProgrammeChat | None = None
    #: called with every sentence as the programme starts speaking it (the transcript)
    line_listeners: list[Callable[[SpokenLine], None]] = field(default_factory=list)

    def stop(self) -> None:
        self._stop_requested = True
        if self._runner is not None:
            self.state = "stopping"
            self._runner.stop()

    def pause(self) -> None:
        if self._built is not None:
            self._built.programme.paused = True
            self.state = "paused"

    def resume(self) -> None:
        if self._built is not None:
            self._built.programme.paused = False
            self.state = "live"

    # --- supervisor actions -------------------------------------------------------------------

    def kill(self) -> None:
        """Cut the talk at the next frame and end the stream cleanly (encoders flushed)."""
        if self._built is not None:
            pts = self._runner.pts if self._runner is not None else 0
            self._built.programme.muted = True
            self._built.programme.interrupt(pts)
            self._built.talk.flush()
        self.stop()

    def mute(self) -> None:
        if self._built is not None:
            self._built.programme.muted = True

    def unmute(self) -> None:
        if self._built is not None:
            self._built.programme.muted = False

    def set_safe_mode(self, on: bool) -> None:
        """Safe mode: "back soon" slate, a quiet audio bed, no selling talk; the label stays."""
        if self._built is not None:
            self._built.programme.safe_mode = on
            if on:
                self._built.talk.flush()
            self.state = "safe_mode" if on else "live"

    def say(self, text: str) -> None:
        """Say ``text`` now: selling talk on air is cut, the line goes ahead of the rundown."""
        from avatarcast.frames import Sentence

        if self._built is None:
            return
        lang = self._built.resolved.opts.lang
        self._built.talk.say_now(Sentence(text=text, lang=lang, source="supervisor"))
        if self._runner is not None and self._built.programme.current_sentence is not None:
            cur = self._built.programme.current_sentence
            if cur.source in ("template", "llm"):
                self._built.programme.interrupt(self._runner.pts)

    def skip_product(self) -> None:
        """Move on to the next product now."""
        if self._built is None:
            return
        current = self._built.programme.current_product
        ids = self._built.catalog.ids()
        if current is not None and current.id in ids and len(ids) > 1:
            nxt = ids[(ids.index(current.id) + 1) % len(ids)]
            self._built.rundown.jump_to(nxt)
        self._built.talk.flush()
        if self._runner is not None:
            self._built.programme.interrupt(self._runner.pts)

    def pause_product(self, product_id: str) -> None:
        """No talk about ``product_id`` until it is resumed."""
        if self._built is None:
            return
        self._built.talk.excluded.add(product_id)
        self._built.talk.invalidate((product_id,))
        current = self._built.programme.current_product
        if current is not None and current.id == product_id:
            self.skip_product()

    def resume_product(self, product_id: str) -> None:
        if self._built is not None:
            self._built.talk.excluded.discard(product_id)

    def chat(self, messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Take a batch of viewer messages; returns each one's fate (accepted or rejected)."""
        if self._chat is None or self._runner is None or self._built is None:
            raise OutputError("the stream is not on air yet; chat is taken once it is live")
        now = self._chat.desk.clock()
        batch = [
            ChatMessage(
                viewer_id=str(m.get("viewer_id", "")),
                name=str(m.get("name", "")),
                text=str(m.get("text", "")),
                time=now,
                id=str(m.get("id", "")),
            )
            for m in messages
        ]
        return [f.as_dict() for f in self._chat.desk.submit(batch)]

    def chat_fate(self, message_id: str) -> dict[str, Any] | None:
        if self._chat is None:
            return None
        fate = self._chat.desk.fate(message_id)
        return fate.as_dict() if fate is not None else None

    def update_products(self, products: list[Product]) -> None:
        if self._built is None:
            return
        changed = self._built.catalog.upsert(products)
        if changed:
            pts = self._runner.pts if self._runner is not None else 0
            self._built.programme.catalog_changed(changed, pts)

    def remove_product(self, product_id: str) -> None:
        if self._built is not None and self._built.catalog.remove(product_id):
            pts = self._runner.pts if self._runner is not None else 0
            self._built.programme.catalog_changed((product_id,), pts)

    @property
    def built(self) -> Built | None:
        return self._built

    @property
    def catalog(self) -> Catalog | None:
        return self._built.catalog if self._built is not None else None

    def status(self) -> Status:
        now = time.perf_counter()
        frames = self._runner.stats.frames if self._runner is not None else 0
        t0, f0 = self._fps_window
        if now - t0 >= 1.0:
            if t0 > 0:
                self._fps = (frames - f0) / (now - t0)
            self._fps_window = (now, frames)
        built = self._built
        product = built.programme.current_product if built is not None else None
        sentence = built.programme.current_sentence if built is not None else None
        stats = self._runner.stats if self._runner is not None else None
        fps = built.fmt.fps if built is not None else 25
        return {
            "state": self.state,
            "uptime_s": round(now - self.started_wall, 3) if self.started_wall else 0.0,
            "frames": frames,
            "media_time_s": round(frames / fps, 3),
            "fps": round(self._fps, 2),
            "av_offset_ms": 0.0,
            "encode_lag_ms": round(stats.last_lateness_s * 1000, 1) if stats else 0.0,
            "max_lag_ms": round(stats.max_lateness_s * 1000, 1) if stats else 0.0,
            "late_frames": stats.late_frames if stats else 0,
            "stage_cpu_s": _stage_cpu(self._runner, built),
            "product_id": product.id if product else None,
            "price": str(product.current_price) if product else None,
            "sentence": sentence.text if sentence else None,
            "destinations": [_dest_status(s) for s in self._rtmp] + self._bad_destinations,
            # given out once the runner has opened its sinks: before, WHEP answers 503
            "whep_url": self._whep_url if stats is not None and stats.started_wall else None,
            "whep_error": self._whep_error,
            "recording_dir": self._recording_dir,
        }


def _stage_cpu(runner: ProgrammeRunner | None, built: Built | None) -> dict[str, float]:
    """CPU seconds so far in compose and encode (split into x264 and AAC where known)."""
    cpu = dict(runner.stats.stage_cpu) if runner is not None else {}
    cpu.update(getattr(built.encoder, "cpu_seconds", {}) if built is not None else {})
    return {k: round(v, 3) for k, v in cpu.items()}


def _dest_status(sink: RtmpSink) -> Status:
    st = sink.status()
    return {
        "name": redact_url(str(st.get("url", ""))),
        "state": st["state"],
        "bytes_sent": st["bytes_sent"],
        "reconnects": st["reconnects"],
        "last_error": redact(str(st["last_error"])) if st.get("last_error") else None,
    }


async def run_live(
    opts: LiveOptions,
    *,
    products: list[Product] | None = None,
    control: LiveControl | None = None,
    on_status: Callable[[Status], None] | None = None,
    status_interval: float = 1.0,
    on_air: Callable[[], None] | None = None,
) -> Status:
    """Run the programme live until ``opts.duration`` passes or ``control.stop()``.

    ``on_air`` is called once everything is built and warmed up, just before the clock starts
    (the CLI gives back its machine-wide start-up slot there).
    """
    control = control or LiveControl()
    resolved = await in_background(validate, opts.programme, products)
    fmt = resolved.fmt
    sinks: list[Sink] = []
    for url in opts.destinations:
        try:
            sinks.append(
                RtmpSink(
                    url,
                    metadata=fmt.metadata,
                    backoff_start=opts.backoff_start,
                    backoff_cap=opts.backoff_cap,
                    name=redact_url(url),
                )
            )
        except ConfigError as e:
            # one bad destination must not keep the others (or the recording) off air
            log.error("destination %s refused: %s", redact_url(url), e)
            control._bad_destinations.append(
                {
                    "name": redact_url(url),
                    "state": "failed",
                    "bytes_sent": 0,
                    "reconnects": 0,
                    "last_error": redact(str(e)),
                }
            )
    control._rtmp = [s for s in sinks if isinstance(s, RtmpSink)]
    if opts.record_dir is not None:
        sinks.append(
            SegmentedRecorder(
                opts.record_dir,
                segment_seconds=opts.segment_seconds,
                metadata=fmt.metadata,
                on_segment_closed=segment_signer(opts.c2pa) if opts.c2pa else None,
            )
        )
        control._recording_dir = str(opts.record_dir)
    if opts.whep_port is not None:
        whep = WhepProcess(
            host=opts.whep_host,
            port=opts.whep_port,
            token=opts.whep_token,
            ice_servers=tuple(_ice(s) for s in opts.ice_servers),
        )
        try:
            control._whep_url = await whep.start()
        except OutputError as e:
            log.error("WHEP is off: %s", e)
            control._whep_error = str(e)
        else:
            sinks += [whep, _PcmTap(whep)]
    guards: list[Guard] = []  # the chat's guard wraps the stream's, bound once built
    try:
        for rtmp in control._rtmp:
            await rtmp.prestart()  # their start-up overlaps with building the programme
        # built at low priority, so other streams' frames on this machine stay on time
        built = await in_background(
            build, resolved, live=True, guard=lambda s, p, t: guards[0](s, p, t)
        )
    except BaseException:
        for sink in sinks:
            await sink.aclose()
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
    control._built = built
    control._chat = chat
    await in_background(_warm_up, built)
    runner = ProgrammeRunner(
        programme=built.programme,
        compose=built.compositor,
        encoder=built.encoder,
        sinks=sinks,
        clock=wall,
        start_pts=round(opts.start_at * fmt.fps),
        before_frame=_chat_hook(chat),
    )
    control._runner = runner
    if control._stop_requested:
        runner.stop()
    frames = round(opts.duration * fmt.fps) if opts.duration is not None else None
    if on_air is not None:
        on_air()
    control.started_wall = time.perf_counter()
    control.state = "live"
    try:
        await built.start()  # the LLM lookahead, when --writer llm
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(built.talk.run_prefetch())
            reporter = tg.create_task(_report(control, on_status, status_interval))
            answers = tg.create_task(chat.desk.run())
            try:
                await runner.run(frames=frames)
            finally:
                prefetch.cancel()
                reporter.cancel()
                answers.cancel()
        control.state = "stopped"
    except BaseException:
        control.state = "failed"
        raise
    finally:
        await runner.close_sinks()
        await built.aclose()
    final = control.status()
    if on_status is not None:
        on_status(final)
    return final


def _chat_hook(chat: ProgrammeChat) -> Callable[[int], Awaitable[None]]:
    async def before_frame(pts: int) -> None:
        chat.before_frame(pts)

    return before_frame


def _warm_up(built: Built) -> None:
    """Draw one frame before the clock starts, so the first due frame is not late."""
    from avatarcast.avatar.base import AvatarState
    from avatarcast.programme.yuv import YuvFrame

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
    control: LiveControl, on_status: Callable[[Status], None] | None, interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        status = control.status()
        if on_status is not None:
            on_status(status)
        else:
            log.info(
                "live: %s frames, %.1f fps, product %s; %s",
                status["frames"],
                status["fps"],
                status["product_id"],
                ", ".join(f"{d['name']} {d['state']}" for d in status["destinations"]) or "-",
            )
