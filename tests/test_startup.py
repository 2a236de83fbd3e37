"""Machine-wide start-up slots: launches take turns, and a dead holder frees its slot."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from avatarcast.startup import StartupSlot


def test_a_second_start_waits_until_the_first_is_on_air(tmp_path: Path) -> None:
    first, second = (
        StartupSlot(slots=1, directory=tmp_path),
        StartupSlot(slots=1, directory=tmp_path),
    )
    first.acquire()
    t0 = time.monotonic()
    second.acquire(timeout=0.3)  # busy: it waits, then goes ahead rather than stay off air
    assert time.monotonic() - t0 >= 0.3 and not second.held
    first.release()
    second.acquire(timeout=5)
    assert second.held and second.waited_s < 0.5
    second.release()
    second.release()  # idempotent


def test_two_slots_let_two_starts_run_together(tmp_path: Path) -> None:
    a, b, c = (StartupSlot(slots=2, directory=tmp_path) for _ in range(3))
    a.acquire(timeout=1)
    b.acquire(timeout=1)
    c.acquire(timeout=0.2)
    assert a.held and b.held and not c.held
    a.release()
    c.acquire(timeout=1)
    assert c.held


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from avatarcast.startup import StartupSlot;"
        f"s = StartupSlot(slots=1, directory=Path({str(tmp_path)!r})); s.acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waiting = StartupSlot(slots=1, directory=tmp_path)
        waiting.acquire(timeout=0.2)
        assert not waiting.held
        holder.kill()
        holder.wait(10)
        waiting.acquire(timeout=5)
        assert waiting.held
    finally:
        holder.kill()
        holder.wait(10)
