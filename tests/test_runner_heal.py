"""How soon the local runner sees a SIGKILLed worker: at once, not when the worker's children
have let go of its pipes.

A worker's children (the RTMP push process) inherit its stdout and stderr. After a SIGKILL
they hold those pipes open until they notice and end (3.3 s at load 20), and the runner waited
for that end of file before it counted the crash and restarted the stream. Here the worker is
a real process (``sh``) whose child holds the pipes for 30 s, so the old wait is unmistakable.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from avatarcast.catalog.model import Product
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.runner.base import StreamEvent, StreamSpec
from avatarcast.runner.local import LocalRunner

pytestmark = pytest.mark.timeout(60)

FRYER = Product(id="AF-1", title="Air fryer", brand="Acme", price=Decimal("89.99"))

#: stands in for ``python -m avatarcast.runner.worker``: a child that keeps the inherited
#: pipes (its pid noted, for the clean-up), a line on stderr, then it waits for ever
WORKER = """#!/bin/sh
sleep 30 &
echo $! >> "{children}"
echo "worker $$ up" >&2
exec sleep 60
"""


async def _wait(what: str, ok: object, within: float) -> float:
    start = time.monotonic()
    while not ok():  # type: ignore[operator]
        assert time.monotonic() - start < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def _pid(runner: LocalRunner) -> int | None:
    status = runner.status("s1")
    return status.pid if status is not None else None


async def test_a_killed_worker_is_seen_at_once_though_its_child_holds_the_pipes(
    tmp_path: Path,
) -> None:
    children = tmp_path / "children"
    fake = tmp_path / "python"
    fake.write_text(WORKER.format(children=children))
    fake.chmod(0o755)
    events: list[StreamEvent] = []
    runner = LocalRunner(
        on_event=events.append, python=str(fake), backoff_start=0.1, stop_timeout=1.0
    )
    spec = StreamSpec(tenant_id="t1", programme=ProgrammeOptions(), products=(FRYER,))
    try:
        await runner.start("s1", spec)
        await _wait("the worker's child", children.exists, 10)
        await _wait("the worker's pid", lambda: _pid(runner) is not None, 10)
        os.kill(_pid(runner) or 0, signal.SIGKILL)
        seen_s = await _wait("the crash", lambda: "crashed" in [e.kind for e in events], 10)
        await _wait("the restart", lambda: "restarted" in [e.kind for e in events], 5)
        crash = next(e for e in events if e.kind == "crashed")
        assert crash.detail["signal"] == "SIGKILL"
        # before: the crash was counted when the child ended and let go, 30 s later
        assert seen_s < 2.0, seen_s
    finally:
        for pid in children.read_text().split() if children.exists() else []:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        await runner.drain()
        await asyncio.sleep(0.2)  # the pipes' end of file, read by the loop while it runs
