"""The ``onnx`` mouth engine: a user's lip-sync model, rendered ahead of the clock.

A chunk's audio is known before it airs (the talk queue voices sentences seconds ahead), so
``prepare`` hands it to one worker thread that renders its mouth crops in order into a bounded
store (``ahead_s`` of frames). ``crop(frame)`` never waits live: the crop is there or the frame
is a miss, and the caller draws its own mouth (the idle loop's) for it, so a slow model makes a
mouth stumble, never a frame late or frozen. Offline (render, replay) ``crop`` waits for the
worker, so the output is the same every run. Misses feed a :class:`MissMonitor`; when they stay
above 2 % for 5 s the engine stops the model and reports ``patches`` until its rest is over.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.neural.face import FaceRef, canonical_mouth
from avatarcast.avatar.neural.features import MelWindows, audio_16k, wave_window
from avatarcast.avatar.neural.model import MouthModel
from avatarcast.avatar.neural.monitor import FallbackPolicy, MissMonitor
from avatarcast.frames import SAMPLE_RATE, SpeechChunk
from avatarcast.threads import lower_thread_priority, start_named_thread

__all__ = ["EngineName", "EngineSwitch", "NeuralCrop", "OnnxMouthEngine", "OnnxMouthStatus"]

EngineName = Literal["onnx", "patches"]
F32 = npt.NDArray[np.float32]
STALE_AFTER = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class NeuralCrop:
    """The model's answer for frame ``index`` of its chunk: ``rgb`` the whole (s, s) crop,
    ``mouth`` its mouth box at the reference's canonical size (when the reference has one)."""

    index: int
    rgb: npt.NDArray[np.uint8]
    mouth: npt.NDArray[np.uint8] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSwitch:
    """The stream's mouth engine changed at ``frame`` (an event for status and the log)."""

    frame: int
    engine: EngineName
    reason: str
    miss_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class OnnxMouthStatus:
    engine: EngineName
    model: str
    provider: str
    quantised: bool
    threads: int
    speaking_frames: int
    hits: int
    misses: int
    miss_rate: float
    fallbacks: int
    rest_until_frame: int | None
    infer_ms: float
    #: crops rendered and waiting for their frames (how far ahead of the clock it is)
    ahead: int = 0


@dataclass(slots=True, eq=False)
class _Job:
    chunk: SpeechChunk
    n: int
    feature: Callable[[int], F32] | None = None  # made by the worker: never on the event loop
    next_k: int = 0
    crops: dict[int, NeuralCrop] = field(default_factory=dict)
    start: int = -1  # set when the chunk airs; until then its frames are not placed
    stop: int = -1
    aired_before: int = 0  # chunks aired before it was prepared


class OnnxMouthEngine:
    """One stream's neural mouth. Thread-safe: planning, composing and the worker share it."""

    def __init__(
        self,
        model: MouthModel,
        face: FaceRef,
        *,
        fps: int,
        live: bool,
        ahead_s: float = 4.0,
        policy: FallbackPolicy | None = None,
        on_switch: Callable[[EngineSwitch], None] | None = None,
    ) -> None:
        self.model = model
        self.face = face
        self.fps = fps
        self.live = live
        self._capacity = max(2, round(ahead_s * fps))
        self._monitor = MissMonitor(fps, policy)
        self._on_switch = on_switch
        self._cond = threading.Condition()
        self._queued: deque[_Job] = deque()  # prepared, in airing order
        self._playing: deque[_Job] = deque()  # started, until their frames are past
        self._stored = 0
        self._aired = 0
        self._now = -1
        self._closed = False
        self._engine: EngineName = "onnx"
        self._hits = self._misses = self._fallbacks = 0
        self._infer_s = 0.0
        self._inferred = 0
        self._recent_s = 0.0  # moving average of one crop's time
        self._events: list[EngineSwitch] = []
        self._face_input = model.face_input(face.crop, face.crop)
        self._thread = start_named_thread(f"mouth-{model.spec.name}"[:15], self._work)

    # --- the programme's side -------------------------------------------------------------------

    @property
    def engine(self) -> EngineName:
        return self._engine

    def prepare(self, chunk: SpeechChunk) -> None:
        """``chunk`` will air next (after those prepared before it): start on its crops."""
        n = -(-len(chunk.pcm) * self.fps // SAMPLE_RATE)
        with self._cond:
            if self._closed or n == 0 or any(j.chunk is chunk for j in self._queued):
                return
            if self._engine == "patches" and not self._retry(self._now):
                return
            job = _Job(chunk=chunk, n=n, aired_before=self._aired)
            self._queued.append(job)
            self._cond.notify_all()
        self._emit()

    def start_chunk(self, chunk: SpeechChunk, frame: int) -> None:
        """``chunk`` airs from ``frame``. Urgent talk may overtake prepared chunks, so those
        stay queued; one that ``STALE_AFTER`` chunks have overtaken was dropped unaired."""
        self.prepare(chunk)
        with self._cond:
            self._aired += 1
            job = next((j for j in self._queued if j.chunk is chunk), None)
            for old in list(self._queued):
                if old is job or self._aired - old.aired_before > STALE_AFTER:
                    self._queued.remove(old)
                    if old is not job:
                        self._drop(old)
            if job is None:
                return
            job.start, job.stop = frame, frame + job.n
            self._playing.append(job)
            self._make_room()
            self._cond.notify_all()

    def stop_chunk(self, frame: int) -> None:
        """The chunk on air ends before ``frame`` (cut or finished)."""
        with self._cond:
            for job in self._playing:
                if job.stop > frame:
                    job.stop = max(job.start, frame)
                    for k in [k for k in job.crops if job.start + k >= job.stop]:
                        del job.crops[k]
                        self._stored -= 1
            self._cond.notify_all()

    def crop(self, frame: int) -> NeuralCrop | None:
        """The mouth of ``frame``, or None: not speaking, late (live), or on ``patches``."""
        with self._cond:
            if frame < self._now:
                return None  # a frame already answered (its crop went to that answer)
            self._now = frame
            job = self._job_at(frame)
            if job is None:
                return None
            k = frame - job.start
            if not self.live:
                while k not in job.crops and not self._closed and job in self._playing:
                    self._cond.wait(0.5)
            found = job.crops.pop(k, None)
            for old in [i for i in job.crops if i < k]:
                del job.crops[old]
                self._stored -= 1
            if found is not None:
                self._stored -= 1
                self._hits += 1
            else:
                self._misses += 1
            self._cond.notify_all()
            if self._monitor.record(found is None):
                self._fall_back(frame)
        self._emit()
        return found

    def status(self) -> OnnxMouthStatus:
        info = self.model.info
        with self._cond:
            return OnnxMouthStatus(
                engine=self._engine,
                model=info.name,
                provider=info.provider,
                quantised=info.quantised,
                threads=info.threads,
                speaking_frames=self._hits + self._misses,
                hits=self._hits,
                misses=self._misses,
                miss_rate=round(self._monitor.miss_rate, 4),
                fallbacks=self._fallbacks,
                rest_until_frame=self._monitor.rest_until,
                infer_ms=round(1000 * self._infer_s / max(1, self._inferred), 2),
                ahead=self._stored,
            )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # --- internals ------------------------------------------------------------------------------

    def _features(self, chunk: SpeechChunk) -> Callable[[int], F32]:
        enc = self.model.spec.encoder
        if enc is None:
            return MelWindows(chunk.pcm, self.fps)
        wave = audio_16k(chunk.pcm)
        return lambda k: wave_window(wave, k, self.fps, enc.window_ms)

    def _emit(self) -> None:
        """Tell the listener about switches, outside the lock (it may ask for the status)."""
        with self._cond:
            events, self._events = self._events, []
        for event in events:
            if self._on_switch is not None:
                self._on_switch(event)

    def _job_at(self, frame: int) -> _Job | None:
        while self._playing and self._playing[0].stop <= frame:
            self._drop(self._playing.popleft())
        for job in self._playing:
            if job.start <= frame < job.stop:
                return job
        return None

    def _drop(self, job: _Job) -> None:
        self._stored -= len(job.crops)
        job.crops.clear()
        job.next_k = job.n

    def _make_room(self) -> None:
        """A chunk that airs before those prepared ahead of it (an answer overtaking the
        rundown) must not wait for room: the latest prepared chunks give theirs back and
        will be rendered again."""
        for job in reversed(self._queued):
            if self._stored < self._capacity // 2:
                return
            self._stored -= len(job.crops)
            job.crops.clear()
            job.next_k = 0

    def switch_to_fallback(self, reason: str) -> bool:
        """A remedy's order (the on-air lip-sync monitor saw the mouth off the voice): patches
        from the next frame, then the model again after the same rest as a fallback for misses.
        False when already on patches."""
        with self._cond:
            if self._engine == "patches":
                return False
            self._fall_back(max(self._now, 0), cause=reason)
        self._emit()
        return True

    def _fall_back(self, frame: int, cause: str | None = None) -> None:
        rate = self._monitor.miss_rate
        rest = self._monitor.fall_back(frame)
        self._engine = "patches"
        self._fallbacks += 1
        for job in [*self._playing, *self._queued]:
            self._drop(job)
        self._queued.clear()
        self._playing.clear()
        self._cond.notify_all()
        why = cause or f"{rate:.0%} of mouth crops were late for 5 s (limit 2 %)"
        reason = f"{why}; patches for {rest:g} s, then the model again"
        self._events.append(
            EngineSwitch(frame=frame, engine="patches", reason=reason, miss_rate=rate)
        )

    def _retry(self, frame: int) -> bool:
        if not self._monitor.may_retry(frame):
            return False
        self._engine = "onnx"
        self._events.append(
            EngineSwitch(
                frame=frame, engine="onnx", reason="rest over: the model again", miss_rate=0.0
            )
        )
        return True

    def _next(self) -> tuple[_Job, int] | None:
        if self._stored >= self._capacity:
            return None
        # live, a crop that cannot be done before its frame is wasted: aim past the frames
        # that one inference (its recent average) will take
        lead = 1 + math.ceil(self._recent_s * self.fps) if self.live else 0
        for job in [*self._playing, *self._queued]:
            if self.live and job.start >= 0:
                job.next_k = max(job.next_k, self._now - job.start + lead)
            limit = job.n if job.start < 0 else job.stop - job.start
            if job.next_k < limit:
                k = job.next_k
                job.next_k += 1
                return job, k
        return None

    def _work(self) -> None:
        lower_thread_priority()
        while True:
            with self._cond:
                item = self._next()
                while item is None and not self._closed:
                    self._cond.wait()
                    item = self._next()
                if self._closed or item is None:
                    return
            job, k = item
            t0 = time.perf_counter()
            mouth = self._render(job, k)
            spent = time.perf_counter() - t0
            with self._cond:
                self._infer_s += spent
                self._inferred += 1
                self._recent_s += 0.2 * (spent - self._recent_s)
                alive = job in self._playing or job in self._queued
                if alive and k < (job.n if job.start < 0 else job.stop - job.start):
                    job.crops[k] = mouth
                    self._stored += 1
                    self._cond.notify_all()

    def _render(self, job: _Job, k: int) -> NeuralCrop:
        model = self.model
        if job.feature is None:
            job.feature = self._features(job.chunk)
        rgb = model.run(self._face_input, model.audio_input(job.feature(k)))
        return NeuralCrop(index=k, rgb=rgb, mouth=canonical_mouth(self.face, rgb))
