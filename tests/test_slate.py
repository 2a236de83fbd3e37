"""The safe slate says why it is on: "Waiting for a supervisor" before anyone has watched,
"We'll be right back" when the supervisor's heartbeats lapse.

The watch picks the reason, the manager sends it in the ``safe_mode`` command, and the frames
that go out carry the words (read back from the decoded video with tesseract).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np

from avatarcast.commands import SafeMode, parse_command
from avatarcast.control.hub import ProductChangeHub
from avatarcast.control.manager import ProgrammeDefaults, StreamManager
from avatarcast.control.supervision import SupervisionWatch
from avatarcast.pipeline.render import replay_session
from avatarcast.programme.disclosure import slate_text

CATALOG = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
FPS = 25


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Runner:
    """Records what the manager sends (the worker's stdin lines)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, stream_id: str, command: dict[str, Any]) -> None:
        self.sent.append((stream_id, json.loads(json.dumps(command))))


class _NoRows:
    def __enter__(self) -> _NoRows:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def get(self, *a: object) -> None:
        return None


async def test_the_manager_sends_no_supervisor_until_the_first_heartbeat(tmp_path: Path) -> None:
    clock = _Clock()
    watch = SupervisionWatch(timeout_s=60, stop_after_s=3600, clock=clock)
    runner = _Runner()
    manager = StreamManager(
        sessions=_NoRows,  # type: ignore[arg-type]
        runner=runner,  # type: ignore[arg-type]
        hub=ProductChangeHub(),
        defaults=ProgrammeDefaults(recordings_dir=tmp_path),
        watch=watch,
    )
    watch.arm("s1", waiting=True)  # on duty, never beaten (the demo)
    await manager.apply_supervision()
    assert watch.slate_reason("s1") == "no_supervisor"
    first = runner.sent[-1]
    assert first == ("s1", {"cmd": "safe_mode", "on": True, "reason": "no_supervisor"})
    assert parse_command(first[1]) == SafeMode(on=True, reason="no_supervisor")

    clock.now += 5
    left = watch.beat("s1")  # the first heartbeat: on air, and never "waiting" again
    assert left is not None and left.kind == "safe_mode_left" and left.reason is None
    clock.now += 61  # then the heartbeats lapse: "back soon", without a reason
    (entered,) = await manager.apply_supervision()
    assert (entered.kind, entered.reason) == ("safe_mode_entered", None)
    assert runner.sent[-1] == ("s1", {"cmd": "safe_mode", "on": True})


def test_the_slate_words_in_english_and_dutch() -> None:
    assert slate_text("en", "no_supervisor") == "Waiting for a supervisor"
    assert slate_text("nl", "no_supervisor") == "Wachten op een supervisor"
    assert slate_text("en") == "We'll be right back"
    assert slate_text("xx", "no_supervisor") == "Waiting for a supervisor"


def _read(path: Path, t: float, tmp: Path) -> str:
    """Tesseract's reading of the frame at ``t`` seconds (its luma, as a PGM)."""
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == round(t * FPS):
                y = np.asarray(f.to_ndarray(format="gray"), np.uint8)
                break
        else:
            raise AssertionError(f"no frame at {t} s")
    pgm = tmp / f"frame-{t}.pgm"
    pgm.write_bytes(f"P5 {y.shape[1]} {y.shape[0]} 255\n".encode() + y.tobytes())
    done = subprocess.run(
        ["tesseract", str(pgm), "-", "--psm", "11"], capture_output=True, text=True, check=True
    )
    return " ".join(done.stdout.split()).lower()


async def test_the_decoded_slate_reads_waiting_then_back_soon(tmp_path: Path) -> None:
    session = tmp_path / "slate.jsonl"
    lines = [
        {"type": "session", "catalog": str(CATALOG), "lang": "en", "duration": 2.4, "seed": 1},
        {"t": 0.0, "type": "safe_mode", "on": True, "reason": "no_supervisor"},
        {"t": 1.2, "type": "safe_mode", "on": True},  # an older line: no reason
    ]
    session.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "slate.mp4"
    rep = await replay_session(session, out=out, report=tmp_path / "r.json")
    assert [c["type"] for c in rep["commands"]] == ["safe_mode", "safe_mode"]
    waiting, back = _read(out, 0.8, tmp_path), _read(out, 2.0, tmp_path)
    assert "waiting for a supervisor" in waiting, waiting
    assert "right back" in back and "waiting" not in back, back


def test_the_slates_sound_is_made_once_per_process_and_read_only() -> None:
    from avatarcast.programme.disclosure import audio_bed

    bed = audio_bed()
    assert audio_bed() is bed and not bed.flags.writeable  # shared by the zygote's workers
    assert bed.dtype == np.int16 and len(bed) == 8 * 48_000 and 0 < np.abs(bed).max() < 1000
