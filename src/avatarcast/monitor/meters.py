"""One number per monitor, kept up to date from what the decoder read.

Each meter is fed once per tick (half a second of output) and exposes ``value``; the watch
compares it with the monitor's threshold. Media time comes from packet pts, never the wall
clock, except for lateness, which is the wall clock's business.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from avatarcast.monitor.audio import BLOCK, block_dbfs, clipped_share, noise_share
from avatarcast.monitor.signals import VideoPacketInfo

__all__ = [
    "AudioMeter",
    "FrozenMeter",
    "OutputMeter",
    "RepeatMeter",
]


@dataclass(slots=True)
class FrozenMeter:
    """Seconds of pictures that changed nothing (tiny P-frames) while talk was heard.

    A keyframe carries no evidence either way (its size is the whole picture), so it neither
    extends nor ends a run; ``flat_std`` is the luma spread of the last decoded keyframe."""

    fps: float
    tiny_bytes: int
    run: int = 0
    flat_std: float = 255.0

    def feed(self, packets: Sequence[VideoPacketInfo], *, talking: bool) -> None:
        for p in packets:
            if p.keyframe:
                continue
            self.run = self.run + 1 if p.size <= self.tiny_bytes and talking else 0

    def keyframe(self, thumb: npt.NDArray[np.uint8]) -> None:
        self.flat_std = float(thumb.std())

    @property
    def seconds(self) -> float:
        return self.run / self.fps


@dataclass(slots=True)
class AudioMeter:
    """Silence run, noise share, clipping and loudness of the decoded audio."""

    sample_rate: int
    silence_dbfs: float
    silent_blocks: int = 0
    noise: float = 0.0
    clipping: float = 0.0
    #: share of 21 ms blocks in the last tick that were not silent
    active: float = 0.0
    #: per tick of the last second: (loud blocks, noise blocks, clipped samples, samples)
    _recent: deque[tuple[int, int, int, int]] = field(default_factory=lambda: deque(maxlen=2))

    def feed(self, pcm: npt.NDArray[np.float32], *, planned_quiet: bool) -> None:
        levels = block_dbfs(pcm, BLOCK)
        quiet = levels < self.silence_dbfs
        self.active = float((~quiet).mean()) if len(quiet) else 0.0
        for q in quiet:
            self.silent_blocks = self.silent_blocks + 1 if q and not planned_quiet else 0
        loud, noisy = noise_share(pcm, self.sample_rate, levels=levels)
        self._recent.append((loud, noisy, round(clipped_share(pcm) * len(pcm)), len(pcm)))
        loud, noisy, clipped, n = (sum(x) for x in zip(*self._recent, strict=True))
        self.noise = noisy / loud if loud >= 4 else 0.0
        self.clipping = clipped / n if n else 0.0

    @property
    def silence_s(self) -> float:
        return self.silent_blocks * BLOCK / self.sample_rate


_WORDS = re.compile(r"\w+")


@dataclass(slots=True)
class RepeatMeter:
    """How often the latest sentence was said within the window (1: not repeated)."""

    window_s: float
    said: deque[tuple[float, str]] = field(default_factory=deque)
    count: int = 0
    last: str = ""

    def line(self, text: str, t: float) -> None:
        key = " ".join(_WORDS.findall(text.lower()))
        if not key:
            return
        while self.said and self.said[0][0] < t - self.window_s:
            self.said.popleft()
        self.said.append((t, key))
        self.count = sum(1 for _, k in self.said if k == key)
        self.last = text


@dataclass(slots=True)
class OutputMeter:
    """Seconds since an output last made progress (bytes sent, bytes on disk)."""

    since: dict[str, float] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)

    def feed(self, name: str, progress: int, healthy: bool, now: float) -> float:
        if name not in self.since or (healthy and progress > self.seen.get(name, -1)):
            self.since[name] = now
        self.seen[name] = max(progress, self.seen.get(name, -1))
        return now - self.since[name]

    def forget(self, name: str) -> None:
        """An output stopped on purpose: when it comes back, it is timed from then."""
        self.since.pop(name, None)
        self.seen.pop(name, None)
