"""CPU seconds and load from /proc: what a benchmark records next to its latencies."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc (a process gone while read is left out)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    return children


def descendants_cpu(root: int) -> dict[int, float]:
    """CPU seconds of every process below ``root`` (the stream workers and their encoders)."""
    children = children_by_parent()
    out: dict[int, float] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        try:
            out[pid] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
        todo += children.get(pid, ())
    return out
