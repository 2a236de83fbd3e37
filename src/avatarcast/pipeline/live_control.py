"""The handle on a running live programme: the operator's levers and its status.

Every lever is a typed command (``avatarcast.commands``) handed to the programme's
:class:`~avatarcast.pipeline.director.Director`, which the frame loop applies between frames;
the convenience methods here (``mute``, ``say`` ...) only build the command. Commands given
before the programme is on air wait and are applied at its first frame. ``stop`` alone acts at
once: it must end a stream that never got on air.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from avatarcast.avatar.neural.twin import OnnxTwinEngine
from avatarcast.avatar.twin.load import Twin
from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.chat.message import ChatMessage
from avatarcast.chat.moderation import Screened
from avatarcast.commands import (
    CatalogChange,
    ChatMessages,
    Command,
    Kill,
    Mute,
    Pause,
    PauseProduct,
    PinProduct,
    Resume,
    ResumeProduct,
    SafeMode,
    Say,
    SkipProduct,
    Stop,
    Unmute,
)
from avatarcast.errors import OutputError
from avatarcast.logs import redact
from avatarcast.monitor.watch import OnAirWatch
from avatarcast.output.hls import HlsSink
from avatarcast.output.rtmp import RtmpSink, redact_url
from avatarcast.pipeline.build import Built
from avatarcast.pipeline.chat import ProgrammeChat
from avatarcast.pipeline.director import Actions, Applied, Director
from avatarcast.pipeline.frame_loop import FrameLoop, ViewOutput
from avatarcast.pipeline.live_status import DestinationStatus, LayoutStatus, LiveStatus
from avatarcast.programme.programme import SpokenLine
from avatarcast.yuv import YuvFrame

__all__ = [
    "DestinationStatus",
    "LayoutStatus",
    "LiveControl",
    "LiveStatus",
    "thumbnail_data_url",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Outputs:
    rtmp: list[RtmpSink] = field(default_factory=list)
    refused: list[DestinationStatus] = field(default_factory=list)
    whep_url: str | None = None
    whep_error: str | None = None
    recording_dir: str | None = None
    hls: HlsSink | None = None


class LiveControl:
    """A handle on a running live programme, used from the same event loop."""

    def __init__(self) -> None:
        self.director = Director()
        self._phase = "starting"
        self.started_wall = 0.0
        self._built: Built | None = None
        self._loop: FrameLoop | None = None
        self._chat: ProgrammeChat | None = None
        self._outputs = _Outputs()
        self._fps_window: tuple[float, int] = (0.0, 0)
        self._fps = 0.0
        self._stop_requested = False
        self._recording_paused: str | None = None
        #: each destination's layout, by ``id`` of its sink (redacted names can be equal), and
        #: the programme's own layout
        self._layouts: dict[int, str] = {}
        self._main_layout = ""
        self._stills_at = 0.0
        self._stills_cache: dict[str, str] = {}
        #: called with every sentence as the programme starts speaking it (the transcript)
        self.line_listeners: list[Callable[[SpokenLine], None]] = []
        #: called with the answers awaiting approval whenever they change (consoles show them)
        self.answer_listeners: list[Callable[[list[dict[str, object]]], None]] = []
        #: called with ``(kind, detail)`` of what happened to the outputs that a person may
        #: need to hear of (``recording_stopped``, ``recording_resumed``); the worker sends
        #: them on as stream events
        self.event_listeners: list[Callable[[str, Mapping[str, Any]], None]] = []
        #: called with every monitor finding and remedy (``glitch``, ``remedy`` ... dicts)
        self.monitor_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._watch: OnAirWatch | None = None
        #: a remedy asked for a fresh worker: the stream ends and its runner starts it again
        self.restart_requested = False

    # --- wiring (run_live) ---------------------------------------------------------------------

    def add_destination(self, sink: RtmpSink, *, layout: str | None = None) -> None:
        """A destination on air, taking ``layout`` (``SIZE/PRESET``)."""
        self._outputs.rtmp.append(sink)
        if layout is not None:
            self._layouts[id(sink)] = layout

    def refuse_destination(self, name: str, error: str) -> None:
        """A destination that could not even be set up: reported as failed, the rest go on."""
        self._outputs.refused.append(
            DestinationStatus(name=name, state="failed", last_error=redact(error))
        )

    @property
    def destinations(self) -> tuple[RtmpSink, ...]:
        return tuple(self._outputs.rtmp)

    def set_recording(self, folder: str) -> None:
        self._outputs.recording_dir = folder

    def recording_changed(self, kind: str, detail: Mapping[str, Any]) -> None:
        """The recording stopped (a full disk) or started again: status and listeners."""
        if kind == "recording_stopped":
            self._recording_paused = self._outputs.recording_dir
            self._outputs.recording_dir = None
        elif kind == "recording_resumed":
            self._outputs.recording_dir = self._recording_paused or self._outputs.recording_dir
        for listener in self.event_listeners:
            listener(kind, detail)

    def set_hls(self, sink: HlsSink) -> None:
        self._outputs.hls = sink

    def set_whep(self, *, url: str | None = None, error: str | None = None) -> None:
        self._outputs.whep_url, self._outputs.whep_error = url, error

    def attach(
        self,
        built: Built,
        chat: ProgrammeChat,
        loop: FrameLoop,
        *,
        layout: str = "",
        actions: Actions | None = None,
        watch: OnAirWatch | None = None,
    ) -> None:
        """The programme is built: commands apply from its first frame. ``layout`` is its own
        (``SIZE/PRESET``); the loop's views are the others. ``actions`` carries out remedies
        and faults; ``watch`` is the stream's on-air monitors."""
        self._built, self._chat, self._loop = built, chat, loop
        self._main_layout = layout
        chat.desk.awaiting_listeners.append(self._answers_changed)
        self._watch = watch
        self.director.bind(built, chat=chat, stop=self._halt, actions=actions)
        if self._stop_requested:
            loop.stop()

    def _answers_changed(self) -> None:
        waiting = self.awaiting_approval() or []
        for listener in self.answer_listeners:
            listener(waiting)

    def set_phase(self, phase: str) -> None:
        """``live``, ``stopped`` or ``failed``, as run_live goes along."""
        self._phase = phase
        if phase == "live":
            self.started_wall = time.perf_counter()

    @property
    def state(self) -> str:
        built = self._built
        if self._phase != "live" or built is None:
            return self._phase
        if built.programme.safe_mode:
            return "safe_mode"
        return "paused" if built.programme.paused else "live"

    # --- levers --------------------------------------------------------------------------------

    def submit(self, command: Command, *, on_done: Callable[[Applied], None] | None = None) -> None:
        """Apply ``command`` at the next frame boundary (or the first, before going on air)."""
        self.director.submit(command, on_done=on_done)

    async def request(self, command: Command) -> Applied:
        """Submit ``command`` and wait until a frame boundary has applied it."""
        if self._phase in ("stopping", "stopped", "failed"):
            raise OutputError(f"the stream is {self._phase}; no frame will apply {command.NAME!r}")
        done: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()

        def resolve(applied: Applied) -> None:
            if not done.done():
                done.set_result(applied)

        self.submit(command, on_done=resolve)
        return await done

    def stop(self) -> None:
        """End at the next frame boundary (encoders flushed); before going on air, at the
        next step of the start-up (``run_live`` checks ``stop_requested`` between them)."""
        self._stop_requested = True
        if self._loop is not None:
            self.submit(Stop())

    @property
    def stop_requested(self) -> bool:
        """``stop`` was called: a start-up still under way ends at its next step."""
        return self._stop_requested

    def monitor_event(self, event: dict[str, Any]) -> None:
        """A finding or a remedy from the on-air monitors: tell the listeners."""
        for listener in self.monitor_listeners:
            try:
                listener(event)
            except Exception:
                log.exception("a monitor listener failed")

    def restart_in_place(self) -> None:
        """The last remedy: end this run so the runner starts the stream again at once."""
        self.restart_requested = True
        self._halt()

    def _halt(self) -> None:
        """The director's Stop or Kill: the frame loop ends after this frame."""
        if self._phase == "live":
            self._phase = "stopping"
        if self._loop is not None:
            self._loop.stop()

    def kill(self) -> None:
        self.submit(Kill())

    def pause(self) -> None:
        self.submit(Pause())

    def resume(self) -> None:
        self.submit(Resume())

    def mute(self) -> None:
        self.submit(Mute())

    def unmute(self) -> None:
        self.submit(Unmute())

    def set_safe_mode(self, on: bool, reason: str | None = None) -> None:
        self.submit(SafeMode(on=on, reason=reason))

    def say(self, text: str) -> None:
        self.submit(Say(text=text))

    def skip_product(self, product_id: str | None = None) -> None:
        self.submit(SkipProduct(product_id=product_id))

    def pause_product(self, product_id: str) -> None:
        self.submit(PauseProduct(product_id=product_id))

    def resume_product(self, product_id: str) -> None:
        self.submit(ResumeProduct(product_id=product_id))

    def pin_product(self, product_id: str) -> None:
        self.submit(PinProduct(product_id=product_id))

    def update_products(self, products: list[Product]) -> None:
        self.submit(CatalogChange(upsert=tuple(products)))

    def remove_product(self, product_id: str) -> None:
        self.submit(CatalogChange(remove=(product_id,)))

    def screen_chat(self, messages: Sequence[Mapping[str, Any]]) -> list[Screened]:
        """The moderator's content verdicts for a batch: pure, so the worker runs it in a
        thread, off the frame loop (a batch of 500 through every lexicon is not free)."""
        if self._chat is None:
            raise OutputError("the stream is not on air yet; chat is taken once it is live")
        moderator = self._chat.desk.moderator
        return [moderator.screen(str(m.get("text", "")), str(m.get("name", ""))) for m in messages]

    async def chat(
        self, messages: Sequence[Mapping[str, Any]], screened: Sequence[Screened] | None = None
    ) -> list[dict[str, Any]]:
        """Hand viewers' messages to the chat desk; returns each one's fate so far.
        ``screened``: the moderator's verdicts, computed off the frame loop by the caller."""
        if not self.on_air:
            raise OutputError("the stream is not on air yet; chat is taken once it is live")
        batch = tuple(
            ChatMessage(
                viewer_id=str(m.get("viewer_id", "")),
                name=str(m.get("name", "")),
                text=str(m.get("text", "")),
                time=0.0,
                id=str(m.get("id", "")),
            )
            for m in messages
        )
        screened_t = tuple(screened) if screened is not None else None
        applied = await self.request(ChatMessages(messages=batch, screened=screened_t))
        return list(applied.result or ())

    # --- reading -------------------------------------------------------------------------------

    def chat_fate(self, message_id: str) -> dict[str, Any] | None:
        if self._chat is None:
            return None
        fate = self._chat.desk.fate(message_id)
        return fate.as_dict() if fate is not None else None

    def awaiting_approval(self) -> list[dict[str, object]] | None:
        """Answers held for a supervisor; None before the chat desk is up."""
        return self._chat.desk.awaiting_approval() if self._chat is not None else None

    @property
    def programme_chat(self) -> ProgrammeChat | None:
        """The chat desk's wiring into the programme, once on air (read it, do not poke it)."""
        return self._chat

    @property
    def on_air(self) -> bool:
        return self._built is not None

    @property
    def built(self) -> Built | None:
        return self._built

    @property
    def catalog(self) -> Catalog | None:
        return self._built.catalog if self._built is not None else None

    def status(self) -> LiveStatus:
        now = time.perf_counter()
        loop, built, outputs = self._loop, self._built, self._outputs
        stats = loop.stats if loop is not None else None
        frames = stats.frames if stats is not None else 0
        t0, f0 = self._fps_window
        if now - t0 >= 1.0:
            if t0 > 0:
                self._fps = (frames - f0) / (now - t0)
            self._fps_window = (now, frames)
        product = built.programme.current_product if built is not None else None
        sentence = built.programme.current_sentence if built is not None else None
        fps = built.fmt.fps if built is not None else 25
        return LiveStatus(
            state=self.state,
            uptime_s=round(now - self.started_wall, 3) if self.started_wall else 0.0,
            frames=frames,
            media_time_s=round(frames / fps, 3),
            fps=round(self._fps, 2),
            encode_lag_ms=round(stats.last_lateness_s * 1000, 1) if stats else 0.0,
            max_lag_ms=round(stats.max_lateness_s * 1000, 1) if stats else 0.0,
            late_frames=stats.late_frames if stats else 0,
            stage_cpu_s=_stage_cpu(loop, built),
            product_id=product.id if product else None,
            price=str(product.current_price) if product else None,
            sentence=sentence.text if sentence else None,
            muted=built.programme.muted if built is not None else False,
            slate=built.programme.slate if built is not None else None,
            destinations=tuple(self._dest_status(s) for s in outputs.rtmp) + tuple(outputs.refused),
            layouts=self._layout_status(),
            # given out once the loop has opened its sinks: before, WHEP answers 503
            whep_url=outputs.whep_url if stats is not None and stats.started_wall else None,
            whep_error=outputs.whep_error,
            recording_dir=outputs.recording_dir,
            commands=tuple(a.brief() for a in list(self.director.log)[-10:]),
            hls=outputs.hls.status() if outputs.hls is not None else None,
            mouth=_mouth_status(built),
            monitors=self._watch.status() if self._watch is not None else {},
        )

    def _dest_status(self, sink: RtmpSink) -> DestinationStatus:
        return replace(_dest_status(sink), layout=self._layouts.get(id(sink)))

    def _layout_status(self) -> tuple[LayoutStatus, ...]:
        """Every layout on air: its size and the destinations that take it."""
        if not self._main_layout:
            return ()
        names = [self._main_layout, *(v.name for v in self.views)]
        stills = self._stills()
        outputs = self._outputs
        return tuple(
            LayoutStatus(
                layout=name,
                still=stills.get(name),
                size=name.split("/")[0],
                preset=name.split("/")[1],
                destinations=tuple(
                    s.name for s in outputs.rtmp if self._layouts.get(id(s)) == name
                ),
                recording=name == self._main_layout and outputs.recording_dir is not None,
                whep=name == self._main_layout and outputs.whep_url is not None,
            )
            for name in names
        )

    def _stills(self) -> dict[str, str]:
        """A small JPEG of each layout's last frame, remade at most every ``STILL_EVERY_S``."""
        now = time.perf_counter()
        if now - self._stills_at < STILL_EVERY_S and self._stills_cache:
            return self._stills_cache
        names = [self._main_layout, *(v.name for v in self.views)]
        out: dict[str, str] = {}
        for name in names:
            frame = self.still(name)
            if frame is not None:
                out[name] = thumbnail_data_url(frame)
        self._stills_at, self._stills_cache = now, out
        return out

    @property
    def views(self) -> list[ViewOutput]:
        """The programme's other layouts on air (``FrameLoop.views``), once built."""
        return self._loop.views if self._loop is not None else []

    def still(self, layout: str | None = None) -> YuvFrame | None:
        """The last frame drawn in ``layout`` (the programme's own when None), or None."""
        if self._loop is None:
            return None
        if layout is None or layout == self._main_layout:
            return self._loop.last_frame
        view = next((v for v in self.views if v.name == layout), None)
        return view.last if view is not None else None


STILL_EVERY_S = 5.0
"""How often the preview stills in the status are remade."""


def thumbnail_data_url(frame: YuvFrame, *, long_side: int = 160) -> str:
    """``frame`` as a small JPEG ``data:`` URL (every n-th pixel: no filtering, ~1 ms)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    step = max(2, 2 * round(max(frame.width, frame.height) / long_side / 2))
    y = frame.y[::step, ::step].astype(np.float32) - 16.0
    u = frame.u[:: step // 2, :: step // 2].astype(np.float32) - 128.0
    v = frame.v[:: step // 2, :: step // 2].astype(np.float32) - 128.0
    h, w = min(y.shape[0], u.shape[0]), min(y.shape[1], u.shape[1])
    y, u, v = y[:h, :w] * 1.164, u[:h, :w], v[:h, :w]
    rgb = np.stack((y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u), axis=-1)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _stage_cpu(loop: FrameLoop | None, built: Built | None) -> dict[str, float]:
    """CPU seconds so far in compose and encode (split into x264 and AAC where known)."""
    cpu = dict(loop.stats.stage_cpu) if loop is not None else {}
    cpu.update(built.encoder.cpu_seconds if built is not None else {})
    for view in loop.views if loop is not None else ():
        for codec, seconds in view.encoder.cpu_seconds.items():
            cpu[f"{codec} {view.name}"] = seconds  # "x264 720x1280/tiktok"
    return {k: round(v, 3) for k, v in cpu.items()}


def _dest_status(sink: RtmpSink) -> DestinationStatus:
    st = sink.status()
    return DestinationStatus(
        name=redact_url(str(st.get("url", ""))),
        state=str(st["state"]),
        bytes_sent=int(st["bytes_sent"]),
        reconnects=int(st["reconnects"]),
        last_error=redact(str(st["last_error"])) if st.get("last_error") else None,
    )


def _mouth_status(built: Built | None) -> dict[str, Any] | None:
    """The twin's mouth engine as status fields; None for the drawn presenter."""
    if built is None or not isinstance(built.pack, Twin):
        return None
    engine = built.pack.engine
    if not isinstance(engine, OnnxTwinEngine):
        return {"engine": engine.name}
    return {
        **asdict(engine.status()),
        "switches": [asdict(s) for s in list(engine.switches)],
    }
