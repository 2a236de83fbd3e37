"""``avatarcast live --commands``: commands typed on stdin take the same path as a worker's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"


def test_stdin_commands_reach_the_programme_and_a_bad_line_is_named(tmp_path: Path) -> None:
    """A kill given before the stream is on air ends it at its first frame, not after the 60 s
    asked for; the malformed line before it is reported with its number and skipped."""
    rec = tmp_path / "rec"
    started = time.monotonic()
    args = ["live", "--catalog", str(DEMO), "--duration", "60", "--record", str(rec), "--commands"]
    done = subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", *args],
        input='not json\n{"cmd": "pin_product"}\n{"cmd": "kill"}\n',
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "stdin line 1" in done.stderr and "stdin line 2" in done.stderr
    assert "'pin_product': field 'product_id'" in done.stderr
    frames = 0
    for seg in sorted(rec.glob("segment-*.mp4")):
        with av.open(str(seg)) as c:
            frames += sum(1 for _ in c.decode(video=0))
    assert 1 <= frames <= 2, frames
    assert took < 60, took
