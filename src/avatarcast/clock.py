"""Media time. Integer pts plus a Fraction time base; the wall clock is only for sleeping.

Live mode sleeps until ``start + pts * time_base``; render and replay run the same code on a
``SimulatedClock`` that never sleeps, so output depends on the counters alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the programme asks of time."""

    @property
    def simulated(self) -> bool:
        """True when media time runs as fast as the machine (render, replay, tests)."""
        ...

    def now(self) -> float:
        """Seconds on this clock (monotonic; media seconds for a simulated clock)."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Wait until ``now() >= t``."""
        ...

    def restart(self) -> None:
        """Called when the outputs are ready: the first frame is due from now."""
        ...


class WallClock:
    """Real time: for live output."""

    simulated = False

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def restart(self) -> None:
        """Make now 0: the programme's first frame is due when the outputs are ready."""
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)


class SimulatedClock:
    """Time that moves only when the programme says so: ``sleep_until`` jumps forward."""

    simulated = True

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def restart(self) -> None:
        """Nothing to do: simulated time is media time, and it has not moved yet."""

    async def sleep_until(self, t: float) -> None:
        if t > self._t:
            self._t = t
        await asyncio.sleep(0)

    def advance(self, dt: float) -> None:
        self._t += dt
