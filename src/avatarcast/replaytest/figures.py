"""Figures a replay report carries for comparing builds, measured during the replay.

``late_frames`` counts frames whose making (plan, compose, encode: the wall time from one
frame's start to the next) took longer than a frame interval: on the machine that replays,
those frames would have been late live. It depends on the machine and its load, which is why
its default tolerance is wide (see ``baseline.DEFAULT_TOLERANCES``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FrameTimer", "add_figures"]


@dataclass(slots=True)
class FrameTimer:
    """Call :meth:`tick` at the start of every frame."""

    fps: float
    _last: float | None = None
    intervals: list[float] = field(default_factory=list)

    def tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.intervals.append(now - self._last)
        self._last = now

    @property
    def late_frames(self) -> int:
        budget = 1.0 / self.fps
        return sum(1 for x in self.intervals if x > budget)

    def p95_ms(self) -> float | None:
        if not self.intervals:
            return None
        ordered = sorted(self.intervals)
        return round(ordered[max(1, math.ceil(0.95 * len(ordered))) - 1] * 1000.0, 2)


def add_figures(
    report: dict[str, Any],
    *,
    timer: FrameTimer,
    talk_refusals: int,
    transcript: list[dict[str, Any]],
) -> None:
    """Add the compared figures to ``report['summary']`` and the transcript to the report."""
    s = report["summary"]
    lag = s.get("lipsync_lag_ms")
    s["lipsync_lag_abs_ms"] = None if lag is None else abs(float(lag))
    s["late_frames"] = timer.late_frames
    s["frame_time_p95_ms"] = timer.p95_ms()
    s["talk_refusals"] = talk_refusals
    # refused sentences of both kinds: the rundown's talk and the answers to viewers
    s["refusals"] = talk_refusals + int(s.get("guardrail_refusals") or 0)
    report["transcript"] = transcript
