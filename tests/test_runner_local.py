"""The local runner with real worker processes running the real live pipeline.

Needs ``avatarcast.pipeline.live`` (run_live, LiveControl). Each test starts one or two
workers, so the whole module takes about half a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from avatarcast.catalog.model import Product
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.runner.base import StreamEvent, StreamSpec, StreamStatus
from avatarcast.runner.local import LocalRunner
from avatarcast.script.llm import LlmOptions

pytestmark = pytest.mark.timeout(120)

FRYER = Product(id="AF-1", title="Air fryer", brand="Acme", price=Decimal("89.99"))
SECRET_KEY = "sk_live_do_not_log_me"


class Events(list[StreamEvent]):
    def kinds(self) -> list[str]:
        return [e.kind for e in self]


@pytest.fixture
async def runner() -> AsyncIterator[tuple[LocalRunner, Events]]:
    events = Events()
    runner = LocalRunner(on_event=events.append, backoff_start=0.2, stop_timeout=5.0)
    try:
        yield runner, events
    finally:
        await runner.drain()


async def wait_for(
    runner: LocalRunner, stream_id: str, ok: Callable[[StreamStatus], bool], within: float = 20
) -> StreamStatus:
    """Poll the runner's snapshot (the worker reports every second) until ``ok``."""
    deadline = time.monotonic() + within
    while True:
        status = runner.status(stream_id)
        if status is not None and ok(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"{stream_id}: condition not met within {within} s; last {status}")
        await asyncio.sleep(0.1)


def frames(status: StreamStatus) -> int:
    """Frames the worker of this run has reported (0 before its first report)."""
    return status.health.frames if status.health is not None else 0


def spec(programme: ProgrammeOptions | None = None, **kw: object) -> StreamSpec:
    return StreamSpec(
        tenant_id="t1",
        programme=programme or ProgrammeOptions(),
        products=(FRYER,),
        **kw,  # type: ignore[arg-type]
    )


async def test_live_run_records_reports_and_stops(
    runner: tuple[LocalRunner, Events], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r, events = runner
    # an unreachable destination: the stream goes on, the key never shows
    dest = f"rtmp://127.0.0.1:9/live/{SECRET_KEY}"
    await r.start("s1", spec(record_dir=tmp_path / "rec", destinations=(dest,)))
    st = await wait_for(r, "s1", lambda s: s.state == "live" and frames(s) >= 50)
    h = st.health
    assert h is not None and st.pid is not None and st.whep_port is not None
    assert 20 <= h.fps <= 30 and h.uptime_s > 1 and h.sentence
    assert h.product_id == "AF-1" and h.price == "89.99"
    assert len(h.destinations) == 1
    assert SECRET_KEY not in json.dumps(h.as_dict()) and SECRET_KEY not in caplog.text

    await r.pause("s1")
    await wait_for(r, "s1", lambda s: s.state == "paused", within=5)
    await r.resume("s1")
    await wait_for(r, "s1", lambda s: s.state == "live", within=5)

    await r.push_products("s1", [FRYER.model_copy(update={"price": Decimal("79.99")})])
    t0 = time.monotonic()
    await wait_for(r, "s1", lambda s: s.health is not None and s.health.price == "79.99", within=5)
    assert time.monotonic() - t0 < 2.5

    await r.stop("s1")
    await wait_for(r, "s1", lambda s: s.state == "stopped", within=15)
    assert events.kinds() == ["started", "stopped"]
    assert events[-1].detail["reason"] == "requested"
    assert "s1" not in r.running()
    segments = list((tmp_path / "rec").glob("*/segment-*.mp4"))
    assert segments and segments[0].stat().st_size > 10_000


async def test_killed_worker_is_restarted_and_a_crash_recorded(
    runner: tuple[LocalRunner, Events],
) -> None:
    r, events = runner
    await r.start("s2", spec())
    first = await wait_for(r, "s2", lambda s: s.state == "live")
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    again = await wait_for(r, "s2", lambda s: s.state == "live" and s.pid != first.pid)
    assert again.restarts == 1
    assert events.kinds()[:3] == ["started", "crashed", "restarted"]
    crash = events[1]
    assert crash.detail["signal"] == "SIGKILL" and crash.tenant_id == "t1"
    await r.stop("s2")
    await wait_for(r, "s2", lambda s: s.state == "stopped", within=15)
    assert events.kinds()[-1] == "stopped"


async def test_bad_options_fail_without_restarts(runner: tuple[LocalRunner, Events]) -> None:
    r, events = runner
    await r.start("s3", spec(ProgrammeOptions(avatar="nobody")))
    st = await wait_for(r, "s3", lambda s: s.state == "failed")
    assert st.last_error is not None and "nobody" in st.last_error
    await asyncio.sleep(0.5)  # longer than the backoff: nothing restarts
    assert events.kinds() == ["started", "failed"]


async def test_an_llm_stream_speaks_checked_llm_lines(
    tmp_path: Path, llm_server: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream with writer "llm" gets the endpoint through its spec; the key never shows."""
    from llm_server import Reply, ScriptedLlmServer

    assert isinstance(llm_server, ScriptedLlmServer)
    good = (
        "The Acme Air fryer costs €89.99.",
        "Meet the Acme Air fryer.",
        "The Air fryer from Acme is here for €89.99.",
    )
    llm_server.script(*[Reply(t) for t in good * 4])
    lines: list[StreamEvent] = []
    r = LocalRunner(on_event=lambda e: None, on_output=lines.append, stop_timeout=5.0)
    try:
        llm = LlmOptions(base_url=llm_server.base_url, model="test", api_key=SECRET_KEY)
        await r.start("s-llm", spec(ProgrammeOptions(writer="llm", llm=llm)))
        deadline = time.monotonic() + 30
        while not any(e.detail.get("source") == "llm" for e in lines if e.kind == "line"):
            assert time.monotonic() < deadline, (r.status("s-llm"), [e.detail for e in lines][:5])
            await asyncio.sleep(0.2)
    finally:
        await r.drain()
    assert SECRET_KEY not in caplog.text
    assert all(e.detail.get("verdicts") for e in lines if e.kind == "line")


AUTOGROUP = Path("/proc/self/autogroup").exists()


def _read(path: str) -> str:
    return Path(path).read_text()  # /proc: no disk, no wait


async def test_workers_run_below_the_api_priority() -> None:
    """``runner.worker_nice``: a stream worker runs that many nice steps below its parent."""
    r = LocalRunner(on_event=lambda e: None, stop_timeout=5.0, nice=3)
    try:
        await r.start("s-nice", spec())
        st = await wait_for(r, "s-nice", lambda s: s.state == "live")
        assert st.pid is not None
        parent = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, st.pid) == min(19, parent + 3)
        # the worker has its own session; under autogroup its group must be lowered as well,
        # or the API shares the CPU with it as an equal whatever the process's nice says
        if AUTOGROUP:
            group = _read(f"/proc/{st.pid}/autogroup")
            assert group.split()[-1] == "3", group
    finally:
        await r.drain()


async def test_a_restarted_worker_comes_back_muted_pinned_and_relabelled() -> None:
    """The sticky commands (mute, pin, label) are given again to the worker that replaces a
    crashed one, and it reports them applied in its new run."""
    lamp = Product(id="LAMP-2", title="Desk lamp", brand="Lumo", price=Decimal("24.99"))
    out = Events()
    r = LocalRunner(on_output=out.append, backoff_start=0.2, stop_timeout=5.0)
    try:
        await r.start("s5", StreamSpec(tenant_id="t1", products=(FRYER, lamp)))
        first = await wait_for(r, "s5", lambda s: s.state == "live", within=60)
        for command in (
            {"cmd": "mute"},
            {"cmd": "pin_product", "product_id": "LAMP-2"},
            {"cmd": "label", "text": "AI host", "position": "top-right"},
            {"cmd": "say", "text": "Not sticky."},
        ):
            await r.send("s5", command)
        pinned = await wait_for(
            r, "s5", lambda s: s.health is not None and s.health.product_id == "LAMP-2", within=5
        )
        assert pinned.health is not None and pinned.health.muted is True
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        again = await wait_for(
            r,
            "s5",
            lambda s: s.pid not in (None, first.pid) and frames(s) > 5,
            within=60,
        )
        assert again.health is not None
        assert again.health.muted is True and again.health.product_id == "LAMP-2"
        replayed = [e.detail["command"] for e in out if e.kind == "command" and e.detail["run"]]
        assert [d["type"] for d in replayed] == ["label", "mute", "pin_product"]
        assert replayed[0]["text"] == "AI host" and replayed[0]["position"] == "top-right"
        assert all(d["pts"] == replayed[0]["pts"] for d in replayed)  # at one frame boundary
    finally:
        await r.drain()
