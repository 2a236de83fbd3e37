"""A 1,000-stream control plane: is the API or the scheduler the limit, not the streams?

    python benchmarks/control_plane_scale.py [--streams 1000] [--concurrency 32]
        [--remote-ms 20] [--markdown FILE]

A real ``avatarcast serve`` (this script re-run with ``--serve``, so it can swap the stream
backend) on a real PostgreSQL (``tests/pg_server.py``), whose runner is a double that answers
like the Ray backend: every start, stop and command is one remote call of ``--remote-ms``
(an actor call on a cluster), status comes from memory (the Ray runner answers from its last
poll). Nothing renders, so what is measured is the API, its database and the scheduler:

create    POST /v1/streams, then a supervisor goes on duty (POST .../supervisor/duty)
start     POST /v1/streams/{id}/start for every stream (lease claimed, runner called)
status    GET /v1/streams/{id}, 3 per stream, random order
stop      POST /v1/streams/{id}/stop for every stream
schedule  one schedule per stream with a window open now: the scheduler's first cycle opens
          every window (starts every stream); the next cycles find nothing to do

Each phase sends at most CONCURRENCY requests at once; latency is per request (p50/p99/max),
and the scheduler's cycle time is measured inside the server around ``Scheduler.tick``. JSON
on stdout, a markdown table on stderr (and to ``--markdown``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from procstat import cpu_seconds, loadavg  # noqa: E402

# --- the server side -----------------------------------------------------------------------


class RemoteDouble:
    """A ``StreamRunner`` that answers like the Ray backend without a cluster."""

    def __init__(self, remote_s: float) -> None:
        self.remote_s = remote_s
        self._live: dict[str, str] = {}

    async def _call(self) -> None:
        await asyncio.sleep(self.remote_s)

    async def start(self, stream_id: str, spec: Any) -> None:
        await self._call()
        self._live[stream_id] = "live"

    async def stop(self, stream_id: str) -> None:
        await self._call()
        self._live.pop(stream_id, None)

    async def pause(self, stream_id: str) -> None:
        await self._call()
        self._live[stream_id] = "paused"

    async def resume(self, stream_id: str) -> None:
        await self._call()
        self._live[stream_id] = "live"

    async def kill(self, stream_id: str) -> None:
        await self.stop(stream_id)

    def status(self, stream_id: str) -> Any:
        from avatarcast.runner.base import StreamStatus

        state = self._live.get(stream_id)
        return None if state is None else StreamStatus(stream_id=stream_id, state=state)

    def whep_endpoint(self, stream_id: str) -> tuple[str, str] | None:
        return None

    def running(self) -> Sequence[str]:
        return list(self._live)

    async def push_products(self, stream_id: str, upserts: Any, removals: Any) -> None:
        await self._call()

    async def drain(self) -> None:
        self._live.clear()

    async def send(self, stream_id: str, command: Mapping[str, Any]) -> None:
        await self._call()

    async def request(self, stream_id: str, command: Mapping[str, Any], **_: Any) -> Any:
        await self._call()
        return {}


def serve_with_double(port: int, remote_s: float, timing: Path) -> None:
    """``avatarcast serve`` with the double as its runner and a clock around each tick."""
    from avatarcast.control import streaming
    from avatarcast.control.scheduler import Scheduler

    @asynccontextmanager
    async def open_double(*_: Any, **__: Any) -> Any:
        yield RemoteDouble(remote_s)

    streaming.open_runner = open_double  # type: ignore[assignment]
    tick = Scheduler.tick

    async def timed(self: Scheduler) -> Any:
        began = time.perf_counter()
        actions = await tick(self)
        with timing.open("a") as f:
            f.write(json.dumps({"s": time.perf_counter() - began, "actions": len(actions)}) + "\n")
        return actions

    Scheduler.tick = timed  # type: ignore[method-assign]
    from avatarcast.cli import app

    app(["serve", "--host", "127.0.0.1", "--port", str(port)])


# --- the client side -----------------------------------------------------------------------


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
        "max_ms": round(ms[-1], 1),
    }


async def phase(
    concurrency: int, jobs: Sequence[Callable[[], Awaitable[httpx.Response]]], ok: set[int]
) -> tuple[list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(job: Callable[[], Awaitable[httpx.Response]]) -> None:
        async with gate:
            began = time.perf_counter()
            response = await job()
            latencies.append(time.perf_counter() - began)
            assert response.status_code in ok, (response.status_code, response.text[:300])

    began = time.perf_counter()
    await asyncio.gather(*(one(j) for j in jobs))
    return latencies, time.perf_counter() - began


async def drive(base: str, keys: dict[str, str], n: int, concurrency: int) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        person = {"full_name": "Night Watch", "contact": "+31 20 555 0100", "reference": "B-1"}
        sup = (await c.post("/v1/supervisors", json=person, headers=admin)).json()["id"]
        link = {"name": "bench", "role": "operator", "supervisor_id": sup}
        made = await c.post("/v1/keys", json=link, headers=admin)
        me = {"Authorization": f"Bearer {made.json()['key']}"}
        product = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
        await c.post("/v1/products", json=product, headers=me)
        ids: list[str] = []

        def create(i: int) -> Callable[[], Awaitable[httpx.Response]]:
            async def go() -> httpx.Response:
                r = await c.post("/v1/streams", json={"name": f"s{i:05d}"}, headers=me)
                ids.append(r.json()["id"])
                return r

            return go

        results: dict[str, Any] = {}
        lat, wall = await phase(concurrency, [create(i) for i in range(n)], {201})
        results["create"] = {**summary(lat), "per_s": round(n / wall, 1)}
        duty = {"supervisor_id": sup}

        def post(path: str, body: Any = None) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: c.post(path, json=body, headers=me)

        lat, wall = await phase(
            concurrency, [post(f"/v1/streams/{s}/supervisor/duty", duty) for s in ids], {200}
        )
        results["duty"] = {**summary(lat), "per_s": round(n / wall, 1)}
        lat, wall = await phase(concurrency, [post(f"/v1/streams/{s}/start") for s in ids], {200})
        results["start"] = {**summary(lat), "per_s": round(n / wall, 1)}
        reads = [s for s in ids for _ in range(3)]
        random.Random(7).shuffle(reads)
        jobs = [lambda s=s: c.get(f"/v1/streams/{s}", headers=me) for s in reads]
        lat, wall = await phase(concurrency, jobs, {200})
        results["status"] = {**summary(lat), "per_s": round(len(reads) / wall, 1)}
        lat, wall = await phase(concurrency, [post(f"/v1/streams/{s}/stop") for s in ids], {200})
        results["stop"] = {**summary(lat), "per_s": round(n / wall, 1)}
        window = {
            "timezone": "UTC",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": time.strftime("%H:%M", time.gmtime(time.time() - 120)),
            "end": time.strftime("%H:%M", time.gmtime(time.time() + 3600)),
        }
        jobs = [post("/v1/schedules", {"stream_id": s, "name": f"n-{s}", **window}) for s in ids]
        lat, wall = await phase(concurrency, jobs, {201})
        results["schedule_create"] = {**summary(lat), "per_s": round(n / wall, 1)}
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--remote-ms", type=float, default=20.0)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_with_double(args.serve, args.remote_ms / 1000, args.timing)
        return

    from pg_server import PgServer, _free_port
    from served import seed

    pg = PgServer.start()
    try:
        url = pg.create_database("scale")
        _, keys, _ = seed(url)
        with tempfile.TemporaryDirectory() as tmp:
            timing = Path(tmp) / "ticks.jsonl"
            (Path(tmp) / "none.toml").write_text("")
            port = _free_port()
            env = {
                **os.environ,
                "AVATARCAST_CONFIG": str(Path(tmp) / "none.toml"),
                "AVATARCAST_DATABASE_URL": url,
                "AVATARCAST_RECORDINGS_DIR": str(Path(tmp) / "rec"),
                "AVATARCAST_API__RATE_LIMIT__RATE": "100000",
                "AVATARCAST_API__RATE_LIMIT__BURST": "100000",
                "AVATARCAST_API__LOAD_SHEDDING__RUNNING": "256",
                "AVATARCAST_QUOTAS__LIVE_STREAMS": str(args.streams * 2),
                "AVATARCAST_QUOTAS__SCHEDULES": str(args.streams * 2),
                "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "86400",
                "AVATARCAST_SUPERVISION__STOP_AFTER_S": "86400",
                "AVATARCAST_SCHEDULER__TICK_S": "2",
                "AVATARCAST_RUNNER__SPARE_WORKER": "false",
            }
            cmd = [sys.executable, __file__, "--serve", str(port), "--timing", str(timing)]
            cmd += ["--remote-ms", str(args.remote_ms)]
            log = (Path(tmp) / "serve.log").open("wb")
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 180
                while True:
                    try:
                        if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, (Path(tmp) / "serve.log").read_text()[
                        -3000:
                    ]
                    time.sleep(0.2)
                load0, cpu0 = loadavg(), cpu_seconds(proc.pid)
                began = time.monotonic()
                try:
                    results = asyncio.run(drive(base, keys, args.streams, args.concurrency))
                except AssertionError:
                    sys.stderr.write((Path(tmp) / "serve.log").read_text()[-4000:])
                    raise
                # the scheduler's cycles: the one that opens every window, then idle ones
                deadline = time.monotonic() + 120
                while True:
                    ticks = (
                        [json.loads(x) for x in timing.read_text().splitlines()]
                        if timing.exists()
                        else []
                    )
                    opened = sum(t["actions"] for t in ticks)
                    if opened >= args.streams and len(ticks) >= 3 + next(
                        i for i, t in enumerate(ticks) if t["actions"]
                    ):
                        break
                    assert time.monotonic() < deadline, f"windows opened: {opened}"
                    time.sleep(0.5)
                busy = [t for t in ticks if t["actions"]]
                idle = [t["s"] for t in ticks if not t["actions"]][-5:]
                results["scheduler"] = {
                    "opening_cycles_s": [round(t["s"], 3) for t in busy],
                    "windows_opened": opened,
                    "idle_cycle_s_median": round(statistics.median(idle), 4) if idle else None,
                }
                results["server_cpu_s"] = round(cpu_seconds(proc.pid) - cpu0, 1)
                results["wall_s"] = round(time.monotonic() - began, 1)
                results["load"] = [load0, loadavg()]
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        pg.stop()
    results["streams"], results["concurrency"] = args.streams, args.concurrency
    results["remote_ms"] = args.remote_ms
    print(json.dumps(results, indent=1))
    rows = ["| phase | n | p50 ms | p99 ms | max ms | per s |", "|---|---|---|---|---|---|"]
    for name in ("create", "duty", "start", "status", "stop", "schedule_create"):
        r = results[name]
        rows.append(
            f"| {name} | {r['n']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['per_s']} |"
        )
    text = "\n".join(rows) + "\n\nscheduler: " + json.dumps(results["scheduler"]) + "\n"
    sys.stderr.write(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
