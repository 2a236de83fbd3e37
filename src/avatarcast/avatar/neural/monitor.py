"""When a neural mouth is too slow to keep, and when to try it again.

Counted in speaking frames (the only frames that ask for a crop): if the miss rate over the
last 5 s of them stays above 2 % for 5 s, the stream falls back to ``patches``. It retries the
model after a rest that doubles with each fallback in a row (30 s, 60 s ... 8 min), so a model
that cannot keep up on this machine costs one short stumble per rest, not a flapping mouth;
5 minutes on the model without a fallback forgets the history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["FallbackPolicy", "MissMonitor"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPolicy:
    max_miss_rate: float = 0.02
    window_s: float = 5.0
    sustain_s: float = 5.0
    first_rest_s: float = 30.0
    max_rest_s: float = 480.0
    forgive_s: float = 300.0


class MissMonitor:
    """Feeds on hit/miss per speaking frame; says when to fall back and when to retry."""

    def __init__(self, fps: int, policy: FallbackPolicy | None = None) -> None:
        self.policy = p = policy or FallbackPolicy()
        self._fps = fps
        self._window: deque[bool] = deque(maxlen=max(1, round(p.window_s * fps)))
        self._misses = 0
        self._above_for = 0  # speaking frames in a row with the windowed rate above the limit
        self._rests = 0  # fallbacks in a row
        self._good_frames = 0  # frames on the model since the last fallback
        self.rest_until: int | None = None  # frame index before which the model rests

    @property
    def miss_rate(self) -> float:
        return self._misses / len(self._window) if self._window else 0.0

    @property
    def resting(self) -> bool:
        return self.rest_until is not None

    def record(self, missed: bool) -> bool:
        """Count one speaking frame; True when this frame makes the stream fall back."""
        if len(self._window) == self._window.maxlen and self._window[0]:
            self._misses -= 1
        self._window.append(missed)
        self._misses += int(missed)
        self._good_frames += 1
        if self._good_frames >= self.policy.forgive_s * self._fps:
            self._rests = 0
        if self.miss_rate > self.policy.max_miss_rate:
            self._above_for += 1
        else:
            self._above_for = 0
        return self._above_for >= self.policy.sustain_s * self._fps

    def fall_back(self, frame: int) -> float:
        """Rest the model from ``frame``; returns the rest in seconds."""
        p = self.policy
        rest = min(p.max_rest_s, p.first_rest_s * 2**self._rests)
        self._rests += 1
        self.rest_until = frame + round(rest * self._fps)
        self._reset()
        return float(rest)

    def may_retry(self, frame: int) -> bool:
        """True once the rest is over (the caller resumes the model at a chunk boundary)."""
        if self.rest_until is not None and frame >= self.rest_until:
            self.rest_until = None
            self._good_frames = 0
            return True
        return self.rest_until is None

    def _reset(self) -> None:
        self._window.clear()
        self._misses = 0
        self._above_for = 0
