"""The handle on a running live programme: the operator's levers and its status."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.chat.message import ChatMessage
from avatarcast.chat.programme import ProgrammeChat
from avatarcast.errors import OutputError
from avatarcast.logs import redact
from avatarcast.output.hls import HlsSink
from avatarcast.output.rtmp import RtmpSink, redact_url
from avatarcast.pipeline.build import Built
from avatarcast.pipeline.runner import ProgrammeRunner
from avatarcast.programme.programme import SpokenLine

__all__ = ["LiveControl", "Status"]

log = logging.getLogger(__name__)

Status = dict[str, Any]


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
    _hls: HlsSink | None = None
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
            "hls": _hls_status(self._hls),
        }


def _hls_status(sink: HlsSink | None) -> Status | None:
    if sink is None:
        return None
    st = sink.status()
    return {
        "dir": str(sink.dir),
        "state": st.state,
        "segments": st.segments,
        "bytes_written": st.bytes_written,
        "failures": st.failures,
        "recoveries": st.recoveries,
        "backlog": st.backlog,
        "gaps": st.gaps,
        "last_error": st.last_error,
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
