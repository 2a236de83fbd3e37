"""The frame loop: plan on the event loop, compose and encode in worker threads, fan out.

Compose and encode of a frame run back to back in one worker thread, one hand-off per frame:
at 25 fps a 720p frame needs a few ms of both, so overlapping them would buy nothing live and
cost a second thread wake-up per frame (offline, PyAV holds the GIL while encoding, so two
threads would only pass it back and forth). A ``FrameTap`` (WHEP takes the raw PCM) sees each
frame in that thread, between its compose and its encode. Live, the loop goes on once a frame
is composed and its encode overlaps the wait for the next (``_live_frame``). Frame n is planned at
``start + n / fps`` on the clock; on a simulated clock the loop runs as fast as the machine
allows and produces the same output every time. The packets of a frame reach each sink in
one ``write_batch``.

Extra ``views`` (other frame shapes of the same programme, ``pipeline.layouts``) draw the same
``FramePlan`` in the same worker call, right after the main frame, each into its own buffer
and its own encoder, whose packets go to that view's sinks only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from avatarcast import trace
from avatarcast.clock import Clock
from avatarcast.frames import EncodedPacket, ProgrammeFrame
from avatarcast.output.base import FrameEncoder, Restartable, RestartableEncoder, Sink
from avatarcast.pipeline.director import Director, Rejected
from avatarcast.pipeline.faults import FaultInjector
from avatarcast.programme.programme import FramePlan, Programme
from avatarcast.threads import named_pool
from avatarcast.yuv import YuvFrame

log = logging.getLogger(__name__)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


Compose = Callable[[FramePlan, YuvFrame], None]


class FrameTap(Protocol):
    """Takes each raw programme frame before its encode (WHEP encodes Opus from the PCM).

    Called in the worker thread that composes and encodes, so it must be thread-safe and
    quick: a tap on the event loop cost a second thread hop per frame.
    """

    def on_frame(self, frame: ProgrammeFrame) -> None: ...


@dataclass(slots=True, kw_only=True)
class ViewOutput:
    """Another shape of the programme: its compose, its encoder, the sinks that take it."""

    name: str
    compose: Compose
    encoder: FrameEncoder
    sinks: list[Sink]
    width: int
    height: int
    #: the last frame drawn (for preview stills); two buffers, so one is never being drawn
    frames: list[YuvFrame] = field(default_factory=list)
    drawn: int = -1

    def __post_init__(self) -> None:
        self.frames = [YuvFrame(self.width, self.height) for _ in range(2)]

    @property
    def last(self) -> YuvFrame | None:
        return self.frames[self.drawn % 2] if self.drawn >= 0 else None


@dataclass(slots=True)
class RunStats:
    frames: int = 0
    late_frames: int = 0
    max_lateness_s: float = 0.0
    last_lateness_s: float = 0.0
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: {"plan": 0.0, "compose": 0.0, "encode": 0.0, "sinks": 0.0}
    )
    #: CPU seconds of the worker thread in compose and in encode (``time.thread_time``)
    stage_cpu: dict[str, float] = field(default_factory=lambda: {"compose": 0.0, "encode": 0.0})
    started_wall: float = 0.0
    first_packet_wall: float | None = None

    @property
    def fps_wall(self) -> float:
        dt = time.perf_counter() - self.started_wall
        return self.frames / dt if dt > 0 else 0.0


class FrameLoop:
    """Drives one programme through one encoder into many sinks, one frame at a time.

    (The stream backends that run whole streams are ``runner``; this is the loop inside one.)
    """

    def __init__(
        self,
        *,
        programme: Programme,
        compose: Compose,
        encoder: FrameEncoder,
        sinks: Sequence[Sink],
        clock: Clock,
        director: Director | None = None,
        before_frame: Callable[[int], Awaitable[None]] | None = None,
        on_progress: Callable[[int], None] | None = None,
        start_pts: int = 0,
        views: Sequence[ViewOutput] = (),
        faults: FaultInjector | None = None,
        taps: Sequence[FrameTap] = (),
    ) -> None:
        self._programme = programme
        self._compose = compose
        self._encoder = encoder
        self._sinks = list(sinks)
        self._clock = clock
        self._director = director
        self._before = before_frame
        self._on_progress = on_progress
        self._start_pts = start_pts
        self.views = list(views)
        self.faults = faults
        self._restart_encoder = False
        self._restart_sinks: list[Restartable] = []
        self._taps = list(taps)
        fmt = programme.fmt
        self._ring = [YuvFrame(fmt.width, fmt.height) for _ in range(3)]
        self._encode_pool = named_pool("encode")
        self._stop = asyncio.Event()
        self.stats = RunStats()
        self.pts = 0
        self._last: YuvFrame | None = None

    @property
    def last_frame(self) -> YuvFrame | None:
        """The programme's last composed frame (the ring keeps it for two more frames)."""
        return self._last

    def stop(self) -> None:
        """End after the current frame; the encoder is flushed and sinks closed cleanly."""
        self._stop.set()

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def restart_encoder(self) -> None:
        """Reopen the video encoder before the next frame's encode (in the encode thread)."""
        if not isinstance(self._encoder, RestartableEncoder):
            raise Rejected("this stream's encoder cannot be restarted in place")
        self._restart_encoder = True

    def restart_sink(self, name: str) -> None:
        """Restart the output called ``name`` before the next frame's packets go out."""
        sinks = [*self._sinks, *(s for view in self.views for s in view.sinks)]
        sink = next((s for s in sinks if s.name == name), None)
        if sink is None or not isinstance(sink, Restartable):
            raise Rejected(f"no output {name!r} that can be restarted")
        self._restart_sinks.append(sink)

    def _timed_compose(self, plan: FramePlan, buf: YuvFrame) -> ProgrammeFrame:
        t0, c0 = time.perf_counter(), time.thread_time()
        self._compose(plan, buf)
        if self.faults is not None:
            self.faults.picture(plan.pts, buf, self._last)
        self.stats.stage_seconds["compose"] += time.perf_counter() - t0
        self.stats.stage_cpu["compose"] += time.thread_time() - c0
        return ProgrammeFrame(
            pts=plan.pts,
            yuv=buf.buf,
            pcm=plan.pcm,
            mouth_open=plan.state.mouth_open,
            sentence=plan.sentence,
            product_id=plan.product.id if plan.product else None,
        )

    def _compose_and_encode(self, plan: FramePlan, buf: YuvFrame) -> list[EncodedPacket]:
        frame = self._timed_compose(plan, buf)
        for tap in self._taps:
            tap.on_frame(frame)
        return self._timed_encode(frame)

    def _all_views(
        self, plan: FramePlan, buf: YuvFrame
    ) -> tuple[list[EncodedPacket], list[list[EncodedPacket]]]:
        return self._compose_and_encode(plan, buf), self._draw_views(plan)

    def _draw_views(self, plan: FramePlan) -> list[list[EncodedPacket]]:
        """The same plan in every other shape: compose and encode each once."""
        out: list[list[EncodedPacket]] = []
        for view in self.views:
            n = view.drawn + 1
            buf = view.frames[n % 2]
            t0, c0 = time.perf_counter(), time.thread_time()
            view.compose(plan, buf)
            view.drawn = n
            self.stats.stage_seconds["compose"] += time.perf_counter() - t0
            cpu = time.thread_time() - c0
            self.stats.stage_cpu["compose"] += cpu
            self.stats.stage_cpu["compose views"] = (
                self.stats.stage_cpu.get("compose views", 0.0) + cpu
            )
            frame = ProgrammeFrame(
                pts=plan.pts,
                yuv=buf.buf,
                pcm=plan.pcm,
                mouth_open=plan.state.mouth_open,
                sentence=plan.sentence,
                product_id=plan.product.id if plan.product else None,
            )
            t0, c0 = time.perf_counter(), time.thread_time()
            out.append(view.encoder.encode(frame))
            self.stats.stage_seconds["encode"] += time.perf_counter() - t0
            cpu = time.thread_time() - c0
            self.stats.stage_cpu["encode"] += cpu
            self.stats.stage_cpu["encode views"] = (
                self.stats.stage_cpu.get("encode views", 0.0) + cpu
            )
        return out

    async def _fan_out_views(self, packets: Sequence[list[EncodedPacket]]) -> None:
        for view, pkts in zip(self.views, packets, strict=True):
            await self._fan_out(pkts, view.sinks)

    def _flush_views(self) -> list[list[EncodedPacket]]:
        return [view.encoder.flush() for view in self.views]

    def _timed_encode(self, frame: ProgrammeFrame) -> list[EncodedPacket]:
        if self._restart_encoder and isinstance(self._encoder, RestartableEncoder):
            self._restart_encoder = False
            self._encoder.restart_video()
        t0, c0 = time.perf_counter(), time.thread_time()
        packets = self._encoder.encode(frame)
        self.stats.stage_seconds["encode"] += time.perf_counter() - t0
        self.stats.stage_cpu["encode"] += time.thread_time() - c0
        return packets

    async def _fan_out(
        self, packets: Sequence[EncodedPacket], sinks: Sequence[Sink] | None = None
    ) -> None:
        if not packets:
            return
        if self.stats.first_packet_wall is None:
            self.stats.first_packet_wall = time.perf_counter()
        t0 = time.perf_counter()
        while self._restart_sinks:
            stuck = self._restart_sinks.pop(0)
            try:
                await stuck.restart()
            except Exception:
                log.exception("restarting an output failed")
        faults = self.faults
        for sink in self._sinks if sinks is None else sinks:
            if faults is not None and faults.stalled(sink.name, self.pts):
                continue
            await sink.write_batch(packets)
        self.stats.stage_seconds["sinks"] += time.perf_counter() - t0

    async def run(self, *, frames: int | None) -> RunStats:
        """Run ``frames`` frames (forever if None, until ``stop()``)."""
        loop = asyncio.get_running_loop()
        fps = self._programme.fmt.fps
        headers = self._encoder.headers
        for sink in self._sinks:
            await sink.open(headers)
        for view in self.views:
            for sink in view.sinks:
                await sink.open(view.encoder.headers)
        self._clock.restart()  # frames are due from now, not from when the runner was built
        self.stats.started_wall = time.perf_counter()
        pending: Future[list[EncodedPacket]] | None = None  # live: the frame being encoded
        try:
            n = 0
            while (frames is None or n < frames) and not self._stop.is_set():
                pts = self._start_pts + n
                self.pts = pts
                due = n / fps
                if not self._clock.simulated:
                    await self._clock.sleep_until(due)
                    late = self._clock.now() - due
                    if late > 1.0 / fps:
                        self.stats.late_frames += 1
                    self.stats.max_lateness_s = max(self.stats.max_lateness_s, late)
                    self.stats.last_lateness_s = max(late, 0.0)
                    trace.record("wake", pts, late)
                if self._director is not None:
                    self._director.drain(pts)  # the one way in: commands apply between frames
                if self._before is not None:
                    await self._before(pts)
                t0 = time.perf_counter()
                plan = await self._programme.plan(pts)
                if self.faults is not None:
                    plan = self.faults.plan(plan)
                self.stats.stage_seconds["plan"] += time.perf_counter() - t0
                buf = self._ring[pts % len(self._ring)]
                if pending is not None and (self.views or self._clock.simulated):
                    packets = await asyncio.wrap_future(pending)
                    await self._fan_out(packets)
                    pending = None
                if not self.views and not self._clock.simulated:
                    pending = await self._live_frame(plan, buf, pending)
                elif self.views:  # after the main encode: views may share its audio
                    packets, others = await loop.run_in_executor(
                        self._encode_pool, self._all_views, plan, buf
                    )
                    await self._fan_out(packets)
                    await self._fan_out_views(others)
                else:
                    packets = await loop.run_in_executor(
                        self._encode_pool, self._compose_and_encode, plan, buf
                    )
                    await self._fan_out(packets)
                self._last = buf
                if self._clock.simulated:
                    await self._clock.sleep_until((n + 1) / fps)
                n += 1
                self.stats.frames = n
                if self._on_progress is not None:
                    self._on_progress(n)
            if pending is not None:
                packets = await asyncio.wrap_future(pending)
                await self._fan_out(packets)
                pending = None
            tail = await loop.run_in_executor(self._encode_pool, self._encoder.flush)
            await self._fan_out(tail)
            if self.views:
                tails = await loop.run_in_executor(self._encode_pool, self._flush_views)
                await self._fan_out_views(tails)
        finally:
            if pending is not None:
                pending.cancel()
            self._encode_pool.shutdown(wait=True)
            trace.flush()
        return self.stats

    async def _live_frame(
        self, plan: FramePlan, buf: YuvFrame, previous: Future[list[EncodedPacket]] | None
    ) -> Future[list[EncodedPacket]]:
        """Frame ``plan.pts`` live: the loop goes on once it is composed, while it encodes.

        The next frame is planned only after this one is drawn (a command never lands in the
        middle of a compose), but its encode overlaps the wait for the next frame, so a slow
        encode on a busy machine has the rest of the frame period too. The encode's end does
        not wake the loop: its packets go out once the next frame is composed (the worker runs
        jobs in order, so they are ready by then).
        """
        loop = asyncio.get_running_loop()
        composed: asyncio.Future[None] = loop.create_future()

        def tell(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, composed, error)

        job = self._encode_pool.submit(self._frame_job, plan, buf, tell)
        await composed
        if previous is not None:
            packets = previous.result() if previous.done() else await asyncio.wrap_future(previous)
            await self._fan_out(packets)
        return job

    def _frame_job(
        self, plan: FramePlan, buf: YuvFrame, tell: Callable[[BaseException | None], None]
    ) -> list[EncodedPacket]:
        tracing = trace.enabled()
        t0 = time.time() if tracing else 0.0
        try:
            frame = self._timed_compose(plan, buf)
            for tap in self._taps:
                tap.on_frame(frame)
        except BaseException as exc:
            tell(exc)
            raise
        tell(None)
        if not tracing:
            return self._timed_encode(frame)
        t1 = time.time()
        packets = self._timed_encode(frame)
        key = any(p.kind == "video" and p.keyframe for p in packets)
        trace.record("job", plan.pts, t0, t1 - t0, time.time() - t1, int(key))
        return packets

    async def close_sinks(self) -> None:
        for sink in [*self._sinks, *(s for view in self.views for s in view.sinks)]:
            try:
                await sink.aclose()
            except Exception:
                log.exception("closing sink %s failed", sink.name)
