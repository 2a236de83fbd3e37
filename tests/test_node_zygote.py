"""The per-node zygote of the Ray backend, without Ray: a real ``node_zygote`` process forks
a zygote of its own for each connection (each stream actor), workers come from those, an
actor's zygote ends with its connection, and the node's ends with the process it watches
(the raylet)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

from avatarcast.runner import node_zygote
from avatarcast.runner.forked import ForkedWorker, Zygote


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


async def gone(pid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        await asyncio.sleep(0.05)


def hubs(path: Path) -> list[int]:
    """Processes started as the zygote of ``path`` (not those forked from one)."""
    found = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    return [p for p in pids if parent(p) not in pids]


async def test_a_zygote_per_actor_forked_from_the_nodes_one_which_ends_with_the_node(
    tmp_path: Path,
) -> None:
    raylet = await asyncio.create_subprocess_exec("sleep", "600")
    path = tmp_path / "z.sock"
    connect = partial(node_zygote.connect, path, raylet.pid)
    actors = [Zygote(connect=connect), Zygote(connect=connect)]
    try:
        workers = [await z.fork(wait_s=120) for z in actors]
        assert all(isinstance(w, ForkedWorker) for w in workers), workers
        a, b = (w for w in workers if w is not None)
        [hub] = hubs(path)
        zygote_a, zygote_b = parent(a.pid), parent(b.pid)
        assert zygote_a != zygote_b and parent(zygote_a) == parent(zygote_b) == hub
        await asyncio.to_thread(
            node_zygote.ensure, path, raylet.pid
        )  # a second start while one answers: none
        await asyncio.sleep(0.5)
        assert hubs(path) == [hub]

        # a worker without a spec ends at the end of its stdin; its status comes back
        assert a.stdin is not None
        a.stdin.close()
        assert await asyncio.wait_for(a.wait(), 60) is not None
        # an actor gone (its connection closed): its zygote ends, the node's goes on
        await actors[0].close()
        await gone(zygote_a, 10)
        assert alive(hub) and alive(zygote_b) and alive(b.pid)
        again = await actors[1].fork(wait_s=30)
        assert again is not None and parent(again.pid) == zygote_b

        raylet.kill()  # the node is gone: so is its zygote and its socket
        await gone(hub, 10)
        assert not path.exists()
        for w in (b, again):
            assert w.stdin is not None
            w.stdin.close()
            assert await asyncio.wait_for(w.wait(), 60) is not None
    finally:
        for z in actors:
            await z.close()
        with contextlib.suppress(ProcessLookupError):
            raylet.kill()
        await raylet.wait()
        for pid in hubs(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
