"""The spare worker: made after a start, handed to the next one, gone at close."""

from __future__ import annotations

import asyncio
import signal
import sys

from avatarcast.runner.base import EXIT_CONFIG
from avatarcast.runner.forked import Zygote
from avatarcast.runner.spare import Workers


async def test_the_next_start_takes_the_ready_spare() -> None:
    workers = Workers(sys.executable, keep=True, delay=0.0)
    first, was_spare = await workers.get()
    assert not was_spare
    for _ in range(100):  # the spare is made in the background
        await asyncio.sleep(0.05)
        second, was_spare = await workers.get()
        if was_spare:
            break
        second.kill()
        await second.wait()
    assert was_spare and second.pid != first.pid and second.returncode is None
    assert second.stdin is not None
    second.stdin.write(b"\n")  # an empty spec: the worker ends as for bad options
    assert await asyncio.wait_for(second.wait(), 60) == EXIT_CONFIG
    first.kill()
    await first.wait()
    await asyncio.sleep(0.2)
    await workers.close()  # the spare made for the next start ends with end of input
    after, was_spare = await workers.get()
    after.kill()
    await after.wait()
    assert not was_spare  # closed: no spare any more


async def test_without_keep_there_is_never_a_spare() -> None:
    workers = Workers(sys.executable, keep=False)
    proc, was_spare = await workers.get()
    proc.kill()
    await proc.wait()
    await asyncio.sleep(0.1)
    again, was_spare_again = await workers.get()
    again.kill()
    await again.wait()
    assert not was_spare and not was_spare_again


async def test_a_zygote_closed_while_it_imports_ends_at_once() -> None:
    """A server that stops within a second of its start (every in-process test app) does not
    wait for its zygote's imports (0.7-1 s, ~0.8 CPU s) to end them: the zygote is stopped."""
    zygote = Zygote(sys.executable)
    zygote.start()
    for _ in range(500):  # started in a task of its own
        if zygote.pid is not None:
            break
        await asyncio.sleep(0.01)
    proc = zygote._proc
    assert proc is not None
    await zygote.close()
    assert proc.returncode == -signal.SIGTERM  # not the 0 of a zygote that saw the socket end
    assert zygote.starts == 1
