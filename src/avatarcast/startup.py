"""Streams on one machine start one after another, so a burst of launches cannot make the
streams already on air late.

Starting a stream costs over a second of CPU (imports, the avatar and card layers, the RTMP
push process, x264), all before its first frame. Eight launched at once want eight seconds of
CPU at the same moment and starve the streams on air of theirs. A start therefore holds one
of a few machine-wide slots (``flock`` on files in a directory all local streams share) from
its first import to the moment its clock starts; the others wait their turn. The kernel drops
the lock when a process dies, so a crash never blocks the rest. The work itself also runs at
a lower priority (``threads.in_background``), which protects streams on air from the slot
holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO

__all__ = ["StartupSlot", "default_slots"]


def default_slots() -> int:
    """One start at a time per two cores: a start uses about one core."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


class StartupSlot:
    """One of ``slots`` machine-wide start-up slots, taken by ``acquire``; ``release`` is
    idempotent. ``directory`` defaults to a per-user folder under the temp dir."""

    def __init__(self, *, slots: int | None = None, directory: Path | None = None) -> None:
        self.slots = slots or default_slots()
        self.directory = (
            directory or Path(tempfile.gettempdir()) / f"avatarcast-start-{os.getuid()}"
        )
        self._held: IO[bytes] | None = None
        self.waited_s = 0.0

    def acquire(self, *, poll: float = 0.05, timeout: float = 120.0) -> None:
        """Wait for a free slot (up to ``timeout`` seconds, then go ahead anyway: a stuck
        neighbour must not keep this stream off air)."""
        if self._held is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        while True:
            for i in range(self.slots):
                handle = (self.directory / f"slot-{i}.lock").open("ab")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    continue
                self._held = handle
                self.waited_s = time.monotonic() - t0
                return
            if time.monotonic() - t0 > timeout:
                self.waited_s = time.monotonic() - t0
                return
            time.sleep(poll)

    def release(self) -> None:
        handle, self._held = self._held, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @property
    def held(self) -> bool:
        return self._held is not None
