"""The animator: a speech chunk becomes a per-frame mouth track; idle motion fills the rest.

A chunk's track is computed once when it starts (``start_chunk``), so ``state`` is a lookup
plus a few sines per frame. Everything depends only on the chunk, the fps and the seed.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.visemes import is_pause, is_voiced_open, openness, viseme_for
from avatarcast.frames import SAMPLE_RATE, SpeechChunk, TimedPhoneme

__all__ = ["Animator", "MouthKey", "frames_for_samples", "track_for_chunk"]

SILENCE_MS = 200
"""A pause at least this long closes the mouth completely."""
ATTACK_MS = 18.0  # the mouth opens fast: onsets must show within one frame
RELEASE_MS = 45.0
COARTICULATION_MS = 35.0  # blend toward the next shape over this much before it starts
_UNSTRESSED = 0.85  # vowels without a stress mark open a little less
_ENERGY_FLOOR = 300.0  # int16 RMS under which a frame is silence (about -40 dBFS)


@dataclass(frozen=True, slots=True)
class MouthKey:
    """The mouth in one frame of a chunk's track."""

    viseme: str
    mouth_open: float


def frames_for_samples(n_samples: int, fps: int) -> int:
    """How many frames a chunk of ``n_samples`` at 48 kHz plays for (the last one partial)."""
    return -(-n_samples * fps // SAMPLE_RATE)


def track_for_chunk(chunk: SpeechChunk, fps: int, *, lang: str | None = None) -> list[MouthKey]:
    """One ``MouthKey`` per frame of the chunk: from its phonemes, or its audio when it has none."""
    n = frames_for_samples(len(chunk.pcm), fps)
    if n == 0:
        return []
    if chunk.phonemes:
        return _phoneme_track(chunk.phonemes, lang or chunk.sentence.lang, n, fps)
    return _energy_track(chunk.pcm, n, fps)


def _coefficients(fps: int) -> tuple[float, float]:
    dt = 1000.0 / fps
    return 1.0 - math.exp(-dt / ATTACK_MS), 1.0 - math.exp(-dt / RELEASE_MS)


def _smooth(targets: Sequence[float], closed: Sequence[bool], fps: int) -> list[float]:
    """Attack/release filter; frames marked closed are exactly 0 and restart the filter."""
    attack, release = _coefficients(fps)
    out: list[float] = []
    y = 0.0
    for x, shut in zip(targets, closed, strict=True):
        if shut:
            y = 0.0
        else:
            y += (attack if x > y else release) * (x - y)
        out.append(min(1.0, max(0.0, y)))
    return out


def _phoneme_track(phonemes: Sequence[TimedPhoneme], lang: str, n: int, fps: int) -> list[MouthKey]:
    frame_ms = 1000.0 / fps
    starts = [p.start_ms for p in phonemes]
    visemes = [viseme_for(p.phoneme, lang) for p in phonemes]
    chosen = _frame_phonemes(phonemes, visemes, starts, n, fps)
    closed = _silent_frames(phonemes, n, fps)
    targets: list[float] = []
    names: list[str] = []
    for i, k in enumerate(chosen):
        if k is None or closed[i]:
            targets.append(0.0)
            names.append("rest")
            continue
        v = visemes[k]
        x = openness(v)
        if is_voiced_open(v) and phonemes[k].phoneme[:1] not in "',":
            x *= _UNSTRESSED
        mid = (i + 0.5) * frame_ms
        if k + 1 < len(phonemes):
            lead = phonemes[k + 1].start_ms - mid
            if lead < COARTICULATION_MS:
                w = 0.5 * (1.0 - max(0.0, lead) / COARTICULATION_MS)
                x = (1.0 - w) * x + w * openness(visemes[k + 1])
        targets.append(x)
        names.append(v)
    opens = _smooth(targets, closed, fps)
    return [
        MouthKey(viseme=v if o > 0.0 else "rest", mouth_open=o)
        for v, o in zip(names, opens, strict=True)
    ]


def _frame_phonemes(
    phonemes: Sequence[TimedPhoneme], visemes: list[str], starts: list[int], n: int, fps: int
) -> list[int | None]:
    """The phoneme at each frame's midpoint; a vowel too short to hold a midpoint takes the
    frame its centre falls in, so no vowel goes unseen."""
    frame_ms = 1000.0 / fps
    chosen: list[int | None] = []
    for i in range(n):
        k = bisect_right(starts, (i + 0.5) * frame_ms) - 1
        chosen.append(k if k >= 0 and (i + 0.5) * frame_ms < phonemes[k].end_ms else None)
    seen = {k for k in chosen if k is not None}
    for k, p in enumerate(phonemes):
        if k not in seen and is_voiced_open(visemes[k]):
            f = int((p.start_ms + p.end_ms) / 2 / frame_ms)
            if 0 <= f < n:
                chosen[f] = k
    return chosen


def _silent_frames(phonemes: Sequence[TimedPhoneme], n: int, fps: int) -> list[bool]:
    """Frames whose midpoint lies in a pause of ``SILENCE_MS`` or more (runs of pause phonemes,
    and the time before the first and after the last sound)."""
    frame_ms = 1000.0 / fps
    end_ms = n * frame_ms
    spans: list[tuple[float, float]] = []
    start: float | None = 0.0
    for p in phonemes:
        if is_pause(p.phoneme):
            if start is None:
                start = p.start_ms
        elif start is not None:
            spans.append((start, p.start_ms))
            start = None
    if start is not None:
        spans.append((start, end_ms))
    closed = [False] * n
    for a, b in spans:
        if b - a < SILENCE_MS:
            continue
        for i in range(max(0, math.ceil(a / frame_ms - 0.5)), n):
            if (i + 0.5) * frame_ms >= b:
                break
            closed[i] = True
    return closed


def _energy_track(pcm: npt.NDArray[np.int16], n: int, fps: int) -> list[MouthKey]:
    """For voices without timings: the mouth follows the loudness of each frame's audio."""
    bounds = [round(i * SAMPLE_RATE / fps) for i in range(n + 1)]
    x = pcm.astype(np.float64)
    rms = np.array(
        [math.sqrt(float(np.mean(x[a:b] ** 2))) if b > a else 0.0 for a, b in pairwise(bounds)]
    )
    loud = rms[rms > _ENERGY_FLOOR]
    if loud.size == 0:
        return [MouthKey(viseme="rest", mouth_open=0.0)] * n
    ref = float(np.percentile(loud, 90))
    gate = max(_ENERGY_FLOOR, 0.12 * ref)
    closed = [bool(r < gate) for r in rms]
    span = max(ref - gate, 1.0)
    targets = [
        0.0 if c else min(1.0, (float(r) - gate) / span) ** 0.6
        for r, c in zip(rms, closed, strict=True)
    ]
    opens = _smooth(targets, closed, fps)
    return [MouthKey(viseme=_shape_for(o), mouth_open=o) for o in opens]


def _shape_for(mouth_open: float) -> str:
    if mouth_open <= 0.0:
        return "rest"
    if mouth_open >= 0.6:
        return "AA"
    if mouth_open >= 0.3:
        return "E"
    return "DNL"


BLINK_CLOSE_S = 0.05
BLINK_HOLD_S = 0.04  # a frame long at 25 fps, so every blink shows fully closed eyes
BLINK_OPEN_S = 0.07
BLINK_INTERVAL_S = (2.0, 6.0)
BREATH_HZ = 0.25
HEAD_PX = (2.0, 1.2)  # peak head sway (dx, dy) in pixels at 720p


class _Blinks:
    """Blink onsets at seeded random intervals, generated forward as time goes on.

    Holds only the current blink, so memory stays flat on a stream that runs for weeks; asking
    for an earlier time than the current blink replays the sequence from the seed.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._restart()

    def _restart(self) -> None:
        self._rng = random.Random(self._seed)
        self._prev = -math.inf
        self._next = self._rng.uniform(1.0, 4.0)

    def _advance(self) -> None:
        self._prev = self._next
        gap = self._rng.uniform(*BLINK_INTERVAL_S)
        if self._rng.random() < 0.12:
            gap = 0.3  # now and then a double blink
        self._next = self._prev + gap

    def value(self, t: float) -> float:
        if t < self._prev:
            self._restart()
        while t >= self._next:
            self._advance()
        dt = t - self._prev
        if dt < BLINK_CLOSE_S:
            return dt / BLINK_CLOSE_S
        if dt < BLINK_CLOSE_S + BLINK_HOLD_S:
            return 1.0
        if dt < BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S:
            return 1.0 - (dt - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S
        return 0.0


class Animator:
    """What the programme asks each frame: the avatar's pose, with lip sync while talking.

    ``start_chunk`` precomputes the chunk's track; ``stop_chunk(f)`` ends it before frame
    ``f`` (frames before ``f`` keep their keys, so it may be called ahead of ``state``).
    """

    def __init__(self, *, fps: int, seed: int = 0, lang: str = "en") -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.fps = fps
        self.lang = lang
        self._blinks = _Blinks(seed)
        rng = random.Random(seed ^ 0x5EED)
        self._breath_phase = rng.uniform(0.0, 2 * math.pi)
        self._head = [
            (rng.uniform(0.06, 0.12), rng.uniform(0.0, 2 * math.pi), 0.6),
            (rng.uniform(0.17, 0.29), rng.uniform(0.0, 2 * math.pi), 0.4),
            (rng.uniform(0.05, 0.10), rng.uniform(0.0, 2 * math.pi), 0.6),
            (rng.uniform(0.21, 0.33), rng.uniform(0.0, 2 * math.pi), 0.4),
        ]
        self._track: list[MouthKey] = []
        self._start = 0
        self._stop = 0

    @property
    def track(self) -> Sequence[MouthKey]:
        """The current chunk's per-frame mouth track (empty before the first chunk)."""
        return self._track

    def track_for_chunk(self, chunk: SpeechChunk) -> list[MouthKey]:
        return track_for_chunk(chunk, self.fps, lang=chunk.sentence.lang or self.lang)

    def start_chunk(self, chunk: SpeechChunk, frame_index: int) -> None:
        self._track = self.track_for_chunk(chunk)
        self._start = frame_index
        self._stop = frame_index + len(self._track)

    def stop_chunk(self, frame_index: int) -> None:
        self._stop = min(self._stop, max(frame_index, self._start))

    def mouth(self, frame_index: int) -> MouthKey:
        if self._start <= frame_index < self._stop:
            return self._track[frame_index - self._start]
        return _CLOSED

    def idle_state(self, frame_index: int) -> AvatarState:
        """Blinks, breathing and a slight sway: the avatar alive with its mouth closed."""
        t = frame_index / self.fps
        dx = dy = 0.0
        for i, (hz, phase, weight) in enumerate(self._head):
            v = weight * math.sin(2 * math.pi * hz * t + phase)
            if i < 2:
                dx += v
            else:
                dy += v
        return AvatarState(
            blink=self._blinks.value(t),
            breath=math.sin(2 * math.pi * BREATH_HZ * t + self._breath_phase),
            head_dx=HEAD_PX[0] * dx,
            head_dy=HEAD_PX[1] * dy,
            frame=frame_index,
        )

    def state(self, frame_index: int) -> AvatarState:
        key = self.mouth(frame_index)
        return replace(self.idle_state(frame_index), viseme=key.viseme, mouth_open=key.mouth_open)


_CLOSED = MouthKey(viseme="rest", mouth_open=0.0)
