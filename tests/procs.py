"""Processes read from /proc: a process's parent and its children (Linux)."""

from __future__ import annotations

from pathlib import Path


def ppid(pid: int) -> int:
    """The parent of ``pid`` (field 4 of /proc/PID/stat, after the command's parentheses)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid``; one that ends meanwhile is left out."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if ppid(int(entry.name)) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out
