"""A stop during a live stream's start-up ends it at the start-up's next step: the warm-up and
the frame loop never run, every output opened for it is closed, and nothing is recorded. Before,
``LiveControl.stop`` was seen only once the programme was attached, so a stopped worker (a
restart told to end, ``serve`` draining) sat through the whole start-up first: 0.6-2.1 s of a
console test's shutdown, more under load."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from avatarcast.pipeline import live
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.pipeline.spec import ProgrammeOptions

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"


def _opts(tmp_path: Path) -> LiveOptions:
    return LiveOptions(
        programme=ProgrammeOptions(catalog_path=DEMO, lang="en"),
        record_dir=tmp_path / "rec",
        whep_port=0,
        duration=30,
    )


def _whep_children() -> list[int]:
    """This process's live WHEP children (``avatarcast.output._whep_serve``)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == os.getpid() and b"_whep_serve" in cmd:
            out.append(int(stat.parent.name))
    return out


@pytest.fixture
def warmed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = live._warm_up

    def counted(built: Any) -> None:
        calls.append(built)
        real(built)

    monkeypatch.setattr(live, "_warm_up", counted)
    return calls


async def test_a_stop_during_the_build_ends_before_the_warm_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warmed: list[Any]
) -> None:
    control = LiveControl()
    real_build = live.build

    def build_then_stop(*args: Any, **kwargs: Any) -> Any:
        built = real_build(*args, **kwargs)
        control.stop()  # as the runner does when told to stop while the worker builds
        return built

    monkeypatch.setattr(live, "build", build_then_stop)
    final = await asyncio.wait_for(run_live(_opts(tmp_path), control=control), 60)
    assert final.state == "stopped" and final.frames == 0
    assert warmed == [], "the warm-up ran after the stop"
    assert not list((tmp_path / "rec").rglob("*.mp4")), "a segment was recorded"
    # the WHEP child started beside the build is closed, not left behind
    assert _whep_children() == []


async def test_a_stop_before_the_start_ends_after_validation(
    tmp_path: Path, warmed: list[Any]
) -> None:
    control = LiveControl()
    control.stop()
    final = await asyncio.wait_for(run_live(_opts(tmp_path), control=control), 30)
    assert final.state == "stopped" and final.frames == 0
    assert warmed == []


async def test_without_a_stop_the_warm_up_runs(tmp_path: Path, warmed: list[Any]) -> None:
    """The counter above can see a warm-up: one stream on air, then stopped."""
    control = LiveControl()
    task = asyncio.create_task(run_live(_opts(tmp_path), control=control))
    for _ in range(600):
        if control.status().frames > 5:
            break
        assert not task.done(), task
        await asyncio.sleep(0.1)
    control.stop()
    final = await asyncio.wait_for(task, 60)
    assert final.state == "stopped" and final.frames > 5
    assert len(warmed) == 1
