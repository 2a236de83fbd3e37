"""What every check gives back, and how a dotted path finds a figure in a report."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarcast.errors import AvatarcastError

__all__ = ["MISSING", "CheckError", "CheckResult", "lookup", "number", "write_atomic"]


class CheckError(AvatarcastError):
    """A check cannot run: a malformed expression, an unknown report field, a missing or
    malformed baseline or tolerance file. The command exits 2; no retry helps."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One test case: an expectation or one compared figure."""

    kind: str  # "expect" or "baseline"
    name: str
    ok: bool
    message: str


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def lookup(report: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``report`` (a number segment indexes a list), or
    :data:`MISSING` when a segment is not there."""
    node = report
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def number(value: Any) -> float | None:
    """``value`` as a number for comparing (booleans count as 0 and 1); None if it is none."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
