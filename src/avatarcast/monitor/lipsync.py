"""Lip sync, sampled: every ``lipsync_every_s`` a window of ``lipsync_window_s`` starting at a
keyframe is decoded in full, in a thread, and the mouth's lag behind the voice estimated.

Decoding every frame all the time would cost more than all the other monitors together
(0.57 ms a frame at 720p); an 8 s window a minute costs about 0.002 CPU s per media second.
A lag counts only when two windows in a row show it, so one window of odd talk (a long
pause, a laugh) does not raise a finding.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from avatarcast.frames import EncodedPacket
from avatarcast.monitor.signals import Box, WindowDecoder, lipsync_window_lag
from avatarcast.settings import MonitorSettings
from avatarcast.threads import named_pool

__all__ = ["LipsyncSampler"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Window:
    """Packets of a lip-sync window, from a keyframe on."""

    start_pts: int
    packets: list[EncodedPacket] = field(default_factory=list)


class LipsyncSampler:
    """Collects windows of the output and estimates the lag of each in a thread."""

    def __init__(
        self,
        settings: MonitorSettings,
        *,
        fps: int,
        sample_rate: int,
        box: Box,
        windows: WindowDecoder,
    ) -> None:
        self._every, self._length = settings.lipsync_every_s, settings.lipsync_window_s
        self._fps, self._sr, self._spf = fps, sample_rate, sample_rate // fps
        self._box, self._windows = box, windows
        self._pcm: deque[tuple[int, npt.NDArray[np.float32]]] = deque()
        self._window: _Window | None = None
        self._next_t = settings.warmup_s
        self._future: Future[tuple[float | None, float]] | None = None
        self._pool = named_pool("lipsync")
        #: the last two estimates, ms (0 when a window could not tell)
        self._lags: deque[float] = deque([0.0, 0.0], maxlen=2)

    @property
    def lag_ms(self) -> float:
        """The smaller of the last two lags (both windows must show a lag for it to count)."""
        return min(abs(lag) for lag in self._lags)

    def audio(self, first_pts: int, pcm: npt.NDArray[np.float32]) -> None:
        """Decoded samples whose first sample is audio pts ``first_pts``."""
        self._pcm.append((first_pts, pcm))
        keep = int((self._length + 4) * self._sr)
        while self._pcm and self._pcm[-1][0] - self._pcm[0][0] > keep:
            self._pcm.popleft()

    def video(self, packets: Sequence[EncodedPacket], t: float) -> float:
        """A tick's packets at media second ``t``; returns the CPU seconds a finished estimate
        took in its thread (counted as the monitors' cost)."""
        cpu = self._collect()
        if self._future is not None:
            return cpu
        for p in packets:
            if p.kind != "video":
                continue
            if self._window is None and p.keyframe and t >= self._next_t:
                self._window = _Window(p.pts)
            if self._window is not None:
                self._window.packets.append(p)
        w = self._window
        if w is None or len(w.packets) < self._length * self._fps:
            return cpu
        self._window = None
        self._next_t = t + self._every
        # the sound of the last half second may still be in the encoder: leave it out
        usable = max(len(w.packets) - self._fps // 2, 0)
        pcm = self._slice(w.start_pts * self._spf, usable * self._spf)
        if pcm is not None:
            self._future = self._pool.submit(self._estimate, w.packets, pcm)
        return cpu

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _estimate(
        self, packets: list[EncodedPacket], pcm: npt.NDArray[np.float32]
    ) -> tuple[float | None, float]:
        c0 = time.thread_time()
        lag = lipsync_window_lag(
            self._windows, packets, pcm, box=self._box, sample_rate=self._sr, fps=self._fps
        )
        return lag, time.thread_time() - c0

    def _collect(self) -> float:
        future = self._future
        if future is None or not future.done():
            return 0.0
        self._future = None
        try:
            lag, cpu = future.result()
        except Exception:
            log.exception("the lip-sync estimate failed")
            return 0.0
        self._lags.append(lag if lag is not None else 0.0)
        return cpu

    def _slice(self, start: int, n: int) -> npt.NDArray[np.float32] | None:
        if not self._pcm:
            return None
        first = self._pcm[0][0]
        whole = np.concatenate([p for _, p in self._pcm])
        a = start - first
        if a < 0 or a + n > len(whole):
            return None
        return whole[a : a + n]
