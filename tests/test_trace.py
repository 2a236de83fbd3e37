"""The debug trace of frames and background jobs (``AVATARCAST_FRAME_TRACE``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from avatarcast import trace
from avatarcast.threads import in_background, in_thread


def _lines(folder: Path) -> list[list[str]]:
    text = (folder / f"{os.getpid()}.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()]


def _speak() -> int:
    time.sleep(0.01)
    return 7


async def test_background_jobs_and_frames_are_stamped_on_the_wall_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "_DIR", str(tmp_path))
    t0 = time.time()
    assert await in_background(_speak) == 7
    assert await in_thread(_speak) == 7
    trace.record("wake", 12, "0.0500")
    assert not (tmp_path / f"{os.getpid()}.tsv").exists()  # kept until a batch is full
    trace.flush()
    lines = _lines(tmp_path)
    assert [line[1] for line in lines] == ["bg", "bg", "wake"]
    for line in lines:
        assert t0 <= float(line[0]) <= time.time()
    name, start, wall, _cpu = lines[0][2:]
    assert name == "_speak"
    assert float(start) >= t0
    assert 0.01 <= float(wall) < 5
    assert lines[2][2:] == ["12", "0.0500"]


def test_a_full_batch_is_written_without_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "_DIR", str(tmp_path))
    for pts in range(trace._BATCH):
        trace.record("wake", pts, "0")
    assert [int(line[2]) for line in _lines(tmp_path)] == list(range(trace._BATCH))


def test_off_it_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_DIR", None)
    for pts in range(trace._BATCH + 1):
        trace.record("wake", pts, "0")
    trace.flush()
    assert not trace.enabled()
    assert list(tmp_path.iterdir()) == []
