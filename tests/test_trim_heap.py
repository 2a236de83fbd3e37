"""``trim_heap`` gives freed heap memory back to the kernel (issue #15: a stream's process
kept what its threads had freed). Run in a fresh interpreter, so the heap is only this one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json
from pathlib import Path
from avatarcast.threads import trim_heap

def anon():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

base = anon()
blocks = [bytes(2000) for _ in range(60_000)]  # ~120 MB in small heap blocks
keep = bytes(2000)  # allocated last: the top of the heap stays in use, so free() alone keeps it
del blocks
freed = anon()
released = trim_heap()
print(json.dumps({"base": base, "freed": freed, "trimmed": anon(), "released": released}))
"""


def test_trim_heap_returns_freed_memory() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert m["freed"] - m["base"] > 60, m  # free() alone kept most of it
    assert m["released"] is True, m
    assert m["freed"] - m["trimmed"] > 60, m  # the trim gave it back
