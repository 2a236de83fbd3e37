"""The on-air monitors on a simulated clock: the same watch, frame loop and encoder as a live
stream (``pipeline.monitored``), fed glitches at media times by ``InjectFault`` commands.

A clean run reports nothing; each drill's finding comes back with the remedy that names it,
and a finding that outlives its remedies climbs its ladder to a worker restart. (Through a
real server and its API: ``test_monitors_live.py``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarcast.commands import CommandError, InjectFault, Remedy, parse_command
from avatarcast.monitor.audio import clipped_share, noise_share
from avatarcast.pipeline.monitored import MonitoredRun, run_monitored
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.settings import MonitorSettings

CATALOG = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
OPTS = ProgrammeOptions(catalog_path=CATALOG, lang="en")


def _findings(run: MonitoredRun, monitor: str) -> list[dict[str, object]]:
    return [e for e in run.kinds("glitch") if e["monitor"] == monitor]


def _remedies(run: MonitoredRun, finding: object) -> list[str]:
    return [str(e["action"]) for e in run.kinds("remedy") if e["finding"] == finding]


async def test_a_clean_programme_raises_no_finding() -> None:
    run = await run_monitored(
        OPTS, seconds=26, monitors=MonitorSettings(lipsync_every_s=6, lipsync_window_s=5)
    )
    assert run.events == [], run.events
    values = run.status["values"]
    assert values["silence"] < 1.5 and values["frozen"] < 2.0 and values["black"] > 20
    assert values["lipsync"] < 100 and values["drift"] < 100
    assert run.monitor_cpu_s / run.media_s < 0.02  # measured 0.008 (benchmarks/README.md)


async def test_each_drill_is_found_and_remedied_in_one_run() -> None:
    drills = [
        (15.0, InjectFault(kind="freeze", seconds=4)),
        (8.0, InjectFault(kind="mute_voice", seconds=4)),
        (24.0, InjectFault(kind="noise", seconds=3)),
        (30.0, InjectFault(kind="black", seconds=4)),
        (36.0, InjectFault(kind="loop_writer", seconds=16)),
    ]
    settings = MonitorSettings(fault_injection=True, lipsync_every_s=30)
    run = await run_monitored(OPTS, seconds=55, monitors=settings, commands=drills)
    expected = {
        "frozen": ("reset_talk", 15.0),
        "silence": ("revoice", 8.0),
        "noise": ("revoice", 24.0),
        "black": ("restart_encoder", 30.0),
        "repeat": ("reset_talk", 36.0),
    }
    for monitor, (action, at) in expected.items():
        found = _findings(run, monitor)
        assert found, (monitor, run.events)
        # a repeat needs three sayings of the looped sentence: up to three sentences long
        limit = 18 if monitor == "repeat" else 8
        assert at <= float(found[0]["t"]) <= at + limit, found  # type: ignore[arg-type]
        assert _remedies(run, found[0]["finding"])[0] == action
    cleared = {e["finding"] for e in run.kinds("glitch_cleared")}
    assert {f["finding"] for m in ("frozen", "silence", "black") for f in _findings(run, m)} <= (
        cleared
    )


async def test_lip_sync_drift_climbs_the_ladder_to_a_worker_restart() -> None:
    settings = MonitorSettings(
        fault_injection=True, lipsync_every_s=3, lipsync_window_s=6, escalate_after_s=4
    )
    run = await run_monitored(
        OPTS,
        seconds=34,
        monitors=settings,
        commands=[(8.0, InjectFault(kind="drift", seconds=60))],
    )
    (lag,) = _findings(run, "lipsync")
    assert lag["value"] == pytest.approx(200.0)  # the drill delays the sound 5 frames
    steps = _remedies(run, lag["finding"])
    assert steps == ["reset_talk", "switch_engine", "restart_worker"]
    switch = next(e for e in run.kinds("remedy") if e["action"] == "switch_engine")
    assert "no fallback engine registered for 'avatar'" in str(switch["error"])
    assert run.media_s < 34  # the restart ended this run (here: the loop stops)


def test_noise_is_told_from_speech_by_flatness_and_pitch() -> None:
    sr = 48000
    t = np.arange(sr) / sr
    voiced = (0.3 * np.sign(np.sin(2 * np.pi * 140 * t)) * np.hanning(sr)).astype(np.float32)
    hiss = np.random.default_rng(3).uniform(-0.5, 0.5, sr).astype(np.float32)
    assert noise_share(voiced, sr)[1] == 0
    loud, noisy = noise_share(hiss, sr)
    assert loud > 20 and noisy == loud  # every other one of the 46 blocks of a second
    assert clipped_share(np.clip(hiss * 3, -1, 1)) > 0.3


def test_remedy_and_fault_commands_parse_and_refuse_bad_fields() -> None:
    assert parse_command({"cmd": "remedy", "action": "revoice", "finding": "silence-1"}) == (
        Remedy(action="revoice", finding="silence-1")
    )
    assert parse_command({"cmd": "fault", "kind": "freeze", "seconds": 3}) == InjectFault(
        kind="freeze", seconds=3.0
    )
    with pytest.raises(CommandError, match="action 'reboot'"):
        parse_command({"cmd": "remedy", "action": "reboot"})
    with pytest.raises(CommandError, match="'seconds'"):
        parse_command({"cmd": "fault", "kind": "freeze", "seconds": 0})
