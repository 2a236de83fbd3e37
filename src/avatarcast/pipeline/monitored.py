"""The on-air monitors over a programme on a simulated clock: the same watch a live stream
runs, fed by the same frame loop and encoder, as fast as the machine allows.

For the clean-run check (no finding over half an hour of media) and the cost benchmark
(``benchmarks/monitors_cost.py``), and for tests that inject a fault at a media time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from avatarcast.clock import SimulatedClock
from avatarcast.commands import Command
from avatarcast.monitor.watch import OnAirWatch
from avatarcast.output.mp4 import NullSink
from avatarcast.pipeline.build import ProgrammeOptions, build, validate
from avatarcast.pipeline.director import Director
from avatarcast.pipeline.faults import FaultInjector
from avatarcast.pipeline.frame_loop import FrameLoop
from avatarcast.pipeline.remedies import StreamActions
from avatarcast.settings import MonitorSettings

__all__ = ["MonitoredRun", "run_monitored"]


@dataclass(slots=True)
class MonitoredRun:
    media_s: float
    wall_s: float
    #: CPU seconds of the whole process over the run, and the watch's own share
    cpu_s: float
    monitor_cpu_s: float
    events: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


async def run_monitored(
    opts: ProgrammeOptions,
    *,
    seconds: float,
    monitors: MonitorSettings | None,
    commands: Sequence[tuple[float, Command]] = (),
) -> MonitoredRun:
    """Run ``seconds`` of ``opts`` into a null sink, watched by ``monitors`` (None: no watch),
    with ``commands`` applied at their media times (faults need ``fault_injection``)."""
    built = build(validate(opts), live=False)
    fmt = built.fmt
    events: list[dict[str, Any]] = []
    director = Director()
    faults = None
    if monitors is not None and monitors.fault_injection:
        faults = FaultInjector(fps=fmt.fps, samples_per_frame=fmt.samples_per_frame)
        faults.bind(built.talk)
        built.listeners.append(faults.on_line)
    sinks: list[Any] = [NullSink()]
    watch = None
    if monitors is not None:
        watch = OnAirWatch(
            monitors,
            fps=fmt.fps,
            sample_rate=fmt.sample_rate,
            state=built.programme,
            emit=events.append,
            submit=lambda cmd, done: director.submit(cmd, on_done=done),
            wall_clock=False,
            mouth_box=built.renderer.mouth_box(),
        )
        built.listeners.append(lambda line: watch.line(line.text, line.t))
        sinks.append(watch)
    loop = FrameLoop(
        programme=built.programme,
        compose=built.compositor,
        encoder=built.encoder,
        sinks=sinks,
        clock=SimulatedClock(),
        director=director,
        faults=faults,
    )
    actions = StreamActions(built=built, loop=loop, restart_worker=loop.stop, faults=faults)
    director.bind(built, chat=None, stop=loop.stop, actions=actions)
    for at, command in commands:
        director.schedule(command, at)
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        stats = await loop.run(frames=round(seconds * fmt.fps))
        await loop.close_sinks()
    finally:
        await built.aclose()
    return MonitoredRun(
        media_s=stats.frames / fmt.fps,
        wall_s=time.perf_counter() - w0,
        cpu_s=time.process_time() - c0,
        monitor_cpu_s=watch.cpu_s if watch is not None else 0.0,
        events=events,
        status=watch.status() if watch is not None else {},
    )
