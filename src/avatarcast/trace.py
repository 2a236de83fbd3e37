"""A debug trace of when a live stream's frames and its background jobs ran.

Set ``AVATARCAST_FRAME_TRACE`` to a folder and every process that runs a live frame loop
appends tab-separated lines to ``<folder>/<pid>.tsv``: one per frame (when the loop woke for it,
how late, the compose and encode of it in the worker thread, whether it was a keyframe), one
per job in a fresh thread (``threads.in_background`` / ``in_thread``: voice synthesis, word
timings, the heap trim; name, start, wall and thread CPU) and one per status report. Times are
wall-clock seconds (``time.time``), so the lines of many streams line up.

Late frames on a shared machine come in bursts; this is what tells which work they line up
with (issue #14). Off, it costs one attribute test per frame.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

__all__ = ["enabled", "flush", "record"]

_DIR = os.environ.get("AVATARCAST_FRAME_TRACE") or None
_lines: list[str] = []
_lock = threading.Lock()
#: lines kept before they are appended to the file (~10 s of frames at 25 fps)
_BATCH = 250


def enabled() -> bool:
    """Whether this process traces (``AVATARCAST_FRAME_TRACE`` names a folder)."""
    return _DIR is not None


def record(kind: str, *fields: object) -> None:
    """Add a line ``kind<TAB>fields...`` stamped with the wall clock; written in batches.
    Floats are written with 4 decimals, here, so that a caller on the frame path formats
    nothing while the trace is off."""
    if _DIR is None:
        return
    cells = (f"{f:.4f}" if isinstance(f, float) else str(f) for f in fields)
    line = "\t".join((f"{time.time():.4f}", kind, *cells))
    with _lock:
        _lines.append(line)
        if len(_lines) < _BATCH:
            return
    flush()


def flush() -> None:
    """Append the lines kept so far to the file (a frame loop calls it when it ends)."""
    if _DIR is None:
        return
    with _lock:
        if not _lines:
            return
        out = "\n".join(_lines) + "\n"
        _lines.clear()
    with (Path(_DIR) / f"{os.getpid()}.tsv").open("a", encoding="utf-8") as f:
        f.write(out)
