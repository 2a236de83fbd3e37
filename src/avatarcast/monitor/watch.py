"""The on-air watch: a sink beside the real outputs that reads the programme as they get it.

It takes every packet the encoder makes (one more ``write_batch`` per frame), decodes what a
monitoring player would (``signals``), and every half second of media updates the meters,
compares each with its threshold from ``settings.monitors``, reports a ``glitch`` (once per
episode, with an id) and walks that finding's remediation ladder: each action is a typed
``Remedy`` command naming the finding, applied by the director at a frame boundary, and
reported as a ``remedy`` event once it has been. All on the frame clock, so a simulated clock
runs exactly the same code as a live stream.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from avatarcast.commands import Command, Remedy
from avatarcast.frames import EncodedPacket
from avatarcast.monitor.ladder import ENGINE_PART, ladder_for
from avatarcast.monitor.lipsync import LipsyncSampler
from avatarcast.monitor.meters import AudioMeter, FrozenMeter, OutputMeter, RepeatMeter
from avatarcast.monitor.signals import Box, OutputDecoder, VideoPacketInfo
from avatarcast.output.base import StreamHeaders
from avatarcast.settings import MonitorSettings

__all__ = ["OnAirWatch", "OutputProgress", "ProgrammeState"]

log = logging.getLogger(__name__)


class ProgrammeState(Protocol):
    """What the watch asks the programme: is quiet planned now (mute, pause, slate)?"""

    @property
    def muted(self) -> bool: ...

    @property
    def paused(self) -> bool: ...

    @property
    def safe_mode(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class OutputProgress:
    """An output's progress counter (bytes sent or on disk) and whether it says it is up."""

    name: str
    progress: int
    up: bool


Submit = Callable[[Command, Callable[[Any], None]], None]


@dataclass(slots=True)
class _Episode:
    finding: str
    monitor: str
    target: str | None
    since: float
    step: int = -1
    acted_at: float = 0.0


class OnAirWatch:
    """The monitors of one live stream (see the module docstring)."""

    def __init__(
        self,
        settings: MonitorSettings,
        *,
        fps: int,
        sample_rate: int,
        state: ProgrammeState,
        emit: Callable[[dict[str, Any]], None],
        submit: Submit | None = None,
        wall_clock: bool = True,
        mouth_box: Box | None = None,
        outputs: Callable[[], Sequence[OutputProgress]] = tuple,
        recording_dir: Path | None = None,
        recording_on: Callable[[], bool] | None = None,
    ) -> None:
        self.name = "monitor"
        self.settings = settings
        self._fps, self._sr, self._spf = fps, sample_rate, sample_rate // fps
        self._state, self._emit, self._submit = state, emit, submit
        self._wall, self._mouth_box = wall_clock, mouth_box
        self._outputs, self._recording_dir = outputs, recording_dir
        self._recording_on = recording_on
        self._decoder: OutputDecoder | None = None
        self._pending: list[EncodedPacket] = []
        self._arrivals: list[VideoPacketInfo] = []
        self._frozen = FrozenMeter(fps=fps, tiny_bytes=settings.frozen_packet_bytes)
        self._audio = AudioMeter(sample_rate=sample_rate, silence_dbfs=settings.silence_dbfs)
        self._repeat = RepeatMeter(window_s=settings.repeat_window_s)
        self._stalls = OutputMeter()
        self._first: tuple[float, int] | None = None  # wall arrival and pts of the first frame
        self._video_end = self._audio_end = 0.0
        self._late_s = 0.0
        self._lipsync: LipsyncSampler | None = None
        self._episodes: dict[tuple[str, str | None], _Episode] = {}
        self._ids = itertools.count(1)
        self._slate_until: float | None = None
        self._slate_finding = ""
        self.glitches: Counter[str] = Counter()
        self.remedies: Counter[str] = Counter()
        self.values: dict[str, float] = {}
        self.cpu_s = 0.0
        self.t = 0.0

    # --- the Sink interface --------------------------------------------------------------------

    async def open(self, headers: StreamHeaders) -> None:
        self._decoder = OutputDecoder(
            video_extradata=headers.video_extradata, audio_extradata=headers.audio_extradata
        )
        if self._mouth_box is not None:
            self._lipsync = LipsyncSampler(
                self.settings,
                fps=self._fps,
                sample_rate=self._sr,
                box=self._mouth_box,
                windows=self._decoder.window_decoder(),
            )

    async def write(self, packet: EncodedPacket) -> None:
        await self.write_batch((packet,))

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        now = time.perf_counter()
        for p in packets:
            if p.kind == "video":
                self._arrivals.append(VideoPacketInfo(p.pts, len(p.data), p.keyframe, now))
        self._pending.extend(packets)
        if len(self._arrivals) >= max(1, self._fps // 2):
            c0 = time.thread_time()
            self._tick()
            self.cpu_s += time.thread_time() - c0

    async def aclose(self) -> None:
        if self._lipsync is not None:
            self._lipsync.close()

    # --- what goes on air besides packets ------------------------------------------------------

    def line(self, text: str, t: float) -> None:
        """A sentence went on air at media second ``t`` (for the repeat monitor)."""
        self._repeat.line(text, t)

    def status(self) -> dict[str, Any]:
        return {
            "glitches": dict(self.glitches),
            "remedies": dict(self.remedies),
            "values": {k: round(v, 4) for k, v in self.values.items()},
            "active": sorted(e.monitor for e in self._episodes.values()),
            "cpu_s": round(self.cpu_s, 4),
            "media_s": round(self.t, 3),
        }

    # --- one tick: half a second of output -----------------------------------------------------

    def _tick(self) -> None:
        decoder = self._decoder
        assert decoder is not None
        packets, self._pending = self._pending, []
        infos, self._arrivals = self._arrivals, []
        audio = [p for p in packets if p.kind == "audio"]
        pcm = decoder.audio(audio)
        if audio:
            last = audio[-1]
            self._audio_end = (last.pts + last.duration) / self._sr
            if self._lipsync is not None:
                self._lipsync.audio(audio[0].pts, pcm)
        s = self._state
        quiet = s.muted or s.paused or s.safe_mode
        self._audio.feed(pcm, planned_quiet=quiet)
        self._frozen.feed(infos, talking=self._audio.active > 0.3 and not quiet)
        for p in packets:
            if p.kind == "video" and p.keyframe:
                thumb = decoder.keyframe(p)
                if thumb is not None:
                    self._frozen.keyframe(thumb)
        if infos:
            self._video_end = (infos[-1].pts + 1) / self._fps
            self.t = self._video_end
            self._late_s = self._lateness(infos)
        if self._lipsync is not None:
            self.cpu_s += self._lipsync.video(packets, self.t)
        self._measure()
        if self.t >= self.settings.warmup_s:
            self._judge()

    def _lateness(self, infos: Sequence[VideoPacketInfo]) -> float:
        if not self._wall:
            return 0.0
        worst = 0.0
        for p in infos:
            if self._first is None:
                self._first = (p.arrival, p.pts)
            due = self._first[0] + (p.pts - self._first[1]) / self._fps
            if p.arrival < due:  # earlier than the first frame said: the reference was late
                self._first = (p.arrival, p.pts)
            worst = max(worst, p.arrival - due)
        return worst

    def _measure(self) -> None:
        v = self.values
        v["frozen"] = self._frozen.seconds
        v["black"] = self._frozen.flat_std
        v["silence"] = self._audio.silence_s
        v["noise"] = self._audio.noise
        v["clipping"] = self._audio.clipping
        v["drift"] = abs(self._audio_end - self._video_end) * 1000 if self._audio_end else 0.0
        v["lipsync"] = self._lipsync.lag_ms if self._lipsync is not None else 0.0
        v["repeat"] = float(self._repeat.count)
        v["late"] = self._late_s
        for i, out in enumerate(self._outputs()):
            v[f"destination_down:{i}"] = self._stalls.feed(out.name, out.progress, out.up, self.t)
        if self._recording_dir is not None:
            if self._recording_on is None or self._recording_on():
                size = _folder_bytes(self._recording_dir)
                v["recording_stalled"] = self._stalls.feed("recording", size, True, self.t)
            else:  # stopped on purpose (a full disk): its stall clock starts again on resume
                self._stalls.forget("recording")
                v["recording_stalled"] = 0.0

    # --- findings and their remedies -------------------------------------------------------------

    def _over(self) -> list[tuple[str, str | None, str, float, float]]:
        """``(monitor, target, metric, value, threshold)`` of every monitor past its threshold."""
        st, v = self.settings, self.values
        out: list[tuple[str, str | None, str, float, float]] = []
        checks = (
            ("frozen", "frozen_s", st.frozen_s, v["frozen"] >= st.frozen_s),
            ("black", "luma_std", st.flat_luma_std, v["black"] < st.flat_luma_std),
            ("silence", "silence_s", st.silence_s, v["silence"] > st.silence_s),
            ("noise", "noise_ratio", st.noise_ratio, v["noise"] >= st.noise_ratio),
            ("clipping", "clipping_ratio", st.clipping_ratio, v["clipping"] >= st.clipping_ratio),
            ("drift", "av_offset_ms", st.drift_ms, v["drift"] >= st.drift_ms),
            ("lipsync", "lipsync_lag_ms", st.drift_ms, v["lipsync"] >= st.drift_ms),
            ("repeat", "repeats", st.repeat_count, v["repeat"] >= st.repeat_count),
            ("late", "late_s", st.late_s, v["late"] >= st.late_s),
        )
        for monitor, metric, threshold, over in checks:
            if over:
                out.append((monitor, None, metric, v[monitor], threshold))
        for i, dest in enumerate(self._outputs()):
            stalled = v.get(f"destination_down:{i}", 0.0)
            if stalled >= st.output_stall_s:
                out.append(("destination_down", dest.name, "down_s", stalled, st.output_stall_s))
        stalled = v.get("recording_stalled", 0.0)
        if stalled >= st.output_stall_s:
            out.append(("recording_stalled", "recording", "stalled_s", stalled, st.output_stall_s))
        return out

    def _judge(self) -> None:
        now = self.t
        over = {(m, tgt): (metric, value, limit) for m, tgt, metric, value, limit in self._over()}
        for key in [k for k in self._episodes if k not in over]:
            ep = self._episodes.pop(key)
            self._emit(
                {
                    "type": "glitch_cleared",
                    "monitor": ep.monitor,
                    "finding": ep.finding,
                    "target": ep.target,
                    "t": round(now, 3),
                    "lasted_s": round(now - ep.since, 3),
                }
            )
        for (monitor, target), (metric, value, threshold) in over.items():
            known = self._episodes.get((monitor, target))
            if known is not None:
                ep = known
            else:
                ep = _Episode(f"{monitor}-{next(self._ids)}", monitor, target, now)
                self._episodes[(monitor, target)] = ep
                self.glitches[monitor] += 1
                self._emit(
                    {
                        "type": "glitch",
                        "monitor": monitor,
                        "finding": ep.finding,
                        "metric": metric,
                        "value": round(float(value), 4),
                        "threshold": threshold,
                        "target": target,
                        "t": round(now, 3),
                    }
                )
            self._escalate(ep, now)
        self._end_slate(now)

    def _escalate(self, ep: _Episode, now: float) -> None:
        ladder = ladder_for(ep.monitor)
        if not self.settings.remediate or self._submit is None or not ladder:
            return
        if ep.step >= 0 and now - ep.acted_at < self.settings.escalate_after_s:
            return
        if ep.step + 1 >= len(ladder):
            return
        ep.step += 1
        ep.acted_at = now
        action = ladder[ep.step]
        target = ENGINE_PART.get(ep.monitor) if action == "switch_engine" else ep.target
        if action == "restart_encoder":
            target = "encoder"
        if action == "safe_slate":
            self._slate_until = now + self.settings.slate_hold_s
            self._slate_finding = ep.finding
        self._act(Remedy(action=action, finding=ep.finding, target=target), ep.monitor)

    def _end_slate(self, now: float) -> None:
        """The show comes back ``slate_hold_s`` after the slate went up, once the finding that
        put it up has cleared (other findings have their own ladders)."""
        if self._slate_until is None or now < self._slate_until:
            return
        if any(e.finding == self._slate_finding for e in self._episodes.values()):
            return
        self._slate_until = None
        if self._submit is not None:
            self._act(Remedy(action="end_slate", finding=""), "slate")

    def _act(self, command: Remedy, monitor: str) -> None:
        assert self._submit is not None
        self.remedies[command.action] += 1
        t = self.t

        def done(applied: Any) -> None:
            event: dict[str, Any] = {
                "type": "remedy",
                "action": command.action,
                "finding": command.finding,
                "monitor": monitor,
                "target": command.target,
                "t": round(t, 3),
                "applied_t": getattr(applied, "t", None),
            }
            error = getattr(applied, "error", None)
            if error is not None:
                event["error"] = error
            self._emit(event)

        self._submit(command, done)


def _folder_bytes(folder: Path) -> int:
    """Bytes in the recording's files (a few segments and an index: one small scandir)."""
    try:
        with os.scandir(folder) as entries:
            return sum(e.stat().st_size for e in entries if e.is_file())
    except OSError:
        return 0
