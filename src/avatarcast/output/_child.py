"""A helper process fed through two pipes: how the RTMP push and the WHEP server both run.

The child is a fresh interpreter, ``python -m MODULE INBOX_FD STATUS_FD``, not
multiprocessing: spawn would re-import the caller's ``__main__`` and fork would copy the
event loop's threads and locks. Or, in a worker forked from the zygote, a process the
zygote forks (``_forked_child``: single-threaded, the modules already imported). The parent
keeps the write end of the inbox and the read end of the status pipe; secrets go through the
inbox, never onto a command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from avatarcast.output._forked_child import ChildForker

__all__ = ["ChildProcess", "spawn_child", "stop_child"]

log = logging.getLogger(__name__)

Runner = Callable[..., Awaitable[Any]]
"""How ``Popen`` is called off the event loop: ``asyncio.to_thread`` or ``in_background``
(a forked child inherits that thread's priority, as a cold one does)."""


class ChildProcess(Protocol):
    """What the owners of a helper use of it: a ``Popen``, or a ``ForkedChild``."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


async def spawn_child(
    module: str, *, run: Runner, forker: ChildForker | None = None, **popen: Any
) -> tuple[ChildProcess, int, int]:
    """Start ``module`` with its two pipes; returns the process, the inbox and status fds.
    With ``forker``, the zygote forks it (cold only if the zygote cannot); ``popen`` may then
    name ``stdout``/``stderr`` as ``subprocess.DEVNULL`` (or leave them inherited)."""
    if forker is not None and not forker.broken:
        forked = await _fork(module, run, forker, popen)
        if forked is not None:
            return forked
    in_r, in_w = os.pipe()
    st_r, st_w = os.pipe()
    try:
        proc = await run(
            subprocess.Popen,
            [sys.executable, "-m", module, str(in_r), str(st_w)],
            pass_fds=(in_r, st_w),
            stdin=subprocess.DEVNULL,
            **popen,
        )
    except BaseException:
        os.close(in_w)
        os.close(st_r)
        raise
    finally:
        os.close(in_r)
        os.close(st_w)
    return proc, in_w, st_r


async def _fork(
    module: str, run: Runner, forker: ChildForker, popen: dict[str, Any]
) -> tuple[ChildProcess, int, int] | None:
    unknown = set(popen) - {"stdout", "stderr"}
    if unknown:
        raise ValueError(f"a forked {module} takes no {sorted(unknown)}")
    quiet = [popen.get(k) == subprocess.DEVNULL for k in ("stdout", "stderr")]
    null = os.open(os.devnull, os.O_WRONLY) if any(quiet) else None
    try:
        out, err = (null if q else None for q in quiet)
        forked: tuple[ChildProcess, int, int] | None = await run(
            forker.fork, module, stdout=out, stderr=err
        )
        return forked
    finally:
        if null is not None:
            os.close(null)


def stop_child(
    proc: ChildProcess,
    threads: Sequence[threading.Thread],
    *,
    timeout: float,
    what: str,
) -> None:
    """Wait ``timeout`` s for the child to finish what it was sent, kill it if stuck, then
    join the threads that fed and listened to it (blocking: call it off the event loop)."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s is stuck after %.1f s; killing it", what, timeout)
        proc.kill()
        proc.wait(5)
    for t in threads:
        t.join(5)
