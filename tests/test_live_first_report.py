"""A live stream's first status report comes right after it goes on air, not a whole
reporting interval later: the runner counts a restarted stream back on air from that report
(a second of the heal time after a SIGKILL, ``benchmarks/heal_time.py``)."""

from __future__ import annotations

import time

from avatarcast.pipeline.live import run_live
from avatarcast.pipeline.live_status import LiveStatus
from test_live import _opts


async def test_the_first_report_follows_going_live() -> None:
    on_air: list[float] = []
    reports: list[tuple[float, LiveStatus]] = []
    await run_live(
        _opts(duration=2.0),
        on_air=lambda: on_air.append(time.monotonic()),
        on_status=lambda s: reports.append((time.monotonic(), s)),
        status_interval=5.0,  # longer than the run: before, the final status came first
    )
    first_t, first = reports[0]
    assert first.state == "live", [s.state for _, s in reports]
    assert first_t - on_air[0] < 1.5, first_t - on_air[0]
    assert [s.state for _, s in reports][-1] == "stopped"
