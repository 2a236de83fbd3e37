"""A helper process fed through two pipes: how the RTMP push and the WHEP server both run.

The child is a fresh interpreter, ``python -m MODULE INBOX_FD STATUS_FD``, not
multiprocessing: spawn would re-import the caller's ``__main__`` and fork would copy the
event loop's threads and locks. The parent keeps the write end of the inbox and the read
end of the status pipe; secrets go through the inbox, never onto a command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["spawn_child", "stop_child"]

log = logging.getLogger(__name__)

Runner = Callable[..., Awaitable[subprocess.Popen[bytes]]]
"""How ``Popen`` is called off the event loop: ``asyncio.to_thread`` or ``in_background``."""


async def spawn_child(
    module: str, *, run: Runner, **popen: Any
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``module`` with its two pipes; returns the process, the inbox and status fds."""
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


def stop_child(
    proc: subprocess.Popen[bytes],
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
