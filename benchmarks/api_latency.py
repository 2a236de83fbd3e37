"""Control-plane latency under load, with live streams running beside it.

    python benchmarks/api_latency.py [--rate 200] [--seconds 30] [--streams 4]
        [--patch-share 0.2] [--markdown FILE]

Starts ``avatarcast serve`` in a subprocess on a free loopback port with SQLite in a temp dir
(the per-key rate limit raised so it does not answer 429), creates an admin key with
``avatarcast keys create``, imports the demo catalog and creates STREAMS streams (no
destinations) with a supervisor on duty. Then three phases at the same paced rate, each request
sent at its scheduled time (open loop: a slow answer does not delay the next request):

healthz   GET /healthz, no stream running: the floor of this server, client and machine
idle      the mix (GET /v1/streams/{id}, PATCH /v1/products/{id} price) with 0 streams running
live      the same mix with STREAMS live 720p25 workers, each of which gets every price change

Latency is measured from the scheduled send time to the end of the response, so a client or
server that falls behind shows up in it; failures and 5 s timeouts count as errors, and what is
still unanswered 10 s after the last send as unfinished. Results are JSON on stdout; progress
and a markdown table go to stderr (and to ``--markdown``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from procstat import cpu_seconds, descendants_cpu, loadavg  # noqa: E402
from raw_http import RawClient  # noqa: E402

from rtmp_server import free_port  # noqa: E402

CATALOG = ROOT / "configs/demo-catalog.json"
CLI = [sys.executable, "-m", "avatarcast.cli"]
MAX_IN_FLIGHT = 400
GRACE_S = 10.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Phase:
    name: str
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    #: what the errors were: an HTTP status or an exception name, with counts
    failures: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    elapsed: float = 0.0
    sending: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    workers_cpu: float = 0.0
    unfinished: int = 0

    def record(self, kind: str, ms: float, ok: bool) -> None:
        if ok:
            self.latencies.setdefault(kind, []).append(ms)
        else:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        answered = sum(map(len, self.latencies.values())) + sum(self.errors.values())
        out: dict[str, Any] = {
            "rate": round(self.sent / self.sending, 1) if self.sending else 0.0,
            "requests": self.sent,
            "answered_per_s": round(
                (sum(map(len, self.latencies.values())) + sum(self.errors.values()))
                / max(self.elapsed, 1e-9),
                1,
            ),
            "unfinished": self.unfinished,
            "errors": dict(self.errors),
            "failures": dict(self.failures),
            "load_1m": list(self.load),
            "server_cpu_pct": round(100 * self.server_cpu / self.elapsed, 1),
            "client_cpu_pct": round(100 * self.client_cpu / self.elapsed, 1),
            "workers_cpu_pct": round(100 * self.workers_cpu / self.elapsed, 1),
            "server_cpu_ms_per_answer": round(1000 * self.server_cpu / max(answered, 1), 2),
        }
        for kind, xs in sorted(self.latencies.items()):
            if len(xs) < 2:
                continue
            q = statistics.quantiles(xs, n=100, method="inclusive")
            out[kind] = {"n": len(xs), "p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2)}
        return out


class Server:
    """``avatarcast serve`` in a subprocess with its own SQLite database."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AVATARCAST_CONFIG": str(ROOT / "configs/avatarcast.toml"),
            "AVATARCAST_DATABASE_URL": f"sqlite:///{workdir / 'avatarcast.db'}",
            "AVATARCAST_RECORDINGS_DIR": str(workdir / "recordings"),
            "AVATARCAST_API__RATE_LIMIT__RATE": "100000",
            "AVATARCAST_API__RATE_LIMIT__BURST": "100000",
        }
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def key(self) -> str:
        out = subprocess.run(
            [*CLI, "keys", "create", "--tenant", "bench", "--role", "admin"],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode:
            raise RuntimeError(f"keys create failed: {out.stderr}")
        return out.stdout.strip()

    def start(self) -> None:
        logf = (self.workdir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            cwd=self.workdir,
            stdout=logf,
            stderr=logf,
        )
        logf.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}; see serve.log")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("serve did not answer /healthz within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def setup(c: httpx.AsyncClient, n: int) -> tuple[list[str], list[dict[str, Any]], dict]:
    """Catalog, ``n`` streams, one supervisor on duty for all; the stream ids, the products and
    the supervisor's headers."""
    r = await c.post(
        "/v1/products/import?format=json",
        content=CATALOG.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    r.raise_for_status()
    products = (await c.get("/v1/products")).raise_for_status().json()["items"]
    body = {"full_name": "Bench Watcher", "contact": "+31 20 555 0100", "reference": "B-1"}
    sup = (await c.post("/v1/supervisors", json=body)).raise_for_status().json()["id"]
    key = {"name": "bench supervisor", "role": "supervisor", "supervisor_id": sup}
    skey = (await c.post("/v1/keys", json=key)).raise_for_status().json()["key"]
    sh = {"Authorization": f"Bearer {skey}"}
    ids = []
    for i in range(n):
        sid = (await c.post("/v1/streams", json={"name": f"bench-{i}"})).raise_for_status()
        ids.append(sid.json()["id"])
        duty = {"supervisor_id": sup}
        r = await c.post(f"/v1/streams/{ids[-1]}/supervisor/duty", json=duty, headers=sh)
        r.raise_for_status()
    return ids, products, sh


async def wait_live(c: httpx.AsyncClient, ids: list[str], limit_s: float = 60) -> float:
    t0 = time.monotonic()
    states: list[dict[str, Any]] = []
    while time.monotonic() - t0 < limit_s:
        states = [(await c.get(f"/v1/streams/{s}")).json()["status"] for s in ids]
        if all(s["state"] == "live" and (s["frames"] or 0) > 50 for s in states):
            return time.monotonic() - t0
        await asyncio.sleep(0.5)
    raise RuntimeError(f"streams not live within {limit_s} s: {states}")


def mix(ids: list[str], products: list[dict[str, Any]], patch_share: float, rng: random.Random):
    """The request mix as (kind, method, path, json) tuples; PATCH toggles a regular price by
    one cent either way so every request is a real change that reaches the workers."""
    prices = {p["id"]: float(p["price"]) for p in products}
    flip: dict[str, bool] = {}

    def next_request() -> tuple[str, str, str, Any]:
        if rng.random() < patch_share:
            pid = rng.choice(list(prices))
            flip[pid] = not flip.get(pid, False)
            price = f"{prices[pid] + (0.01 if flip[pid] else 0):.2f}"
            return "patch_product", "PATCH", f"/v1/products/{pid}", {"price": price}
        return "get_stream", "GET", f"/v1/streams/{rng.choice(ids)}", None

    return next_request


async def drive(send, phase: Phase, rate: float, next_request, pid: int) -> None:
    """Open loop: request i is sent at start + i / rate, whatever happened to the others.
    ``send(method, path, body)`` returns the status code."""
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(when: float, kind: str, method: str, path: str, body: Any) -> None:
        async with in_flight:
            try:
                status = await send(method, path, body)
                ok, what = status < 400, str(status)
            except (httpx.HTTPError, OSError, TimeoutError, ValueError, IndexError) as e:
                ok, what = False, type(e).__name__
            if not ok:
                phase.failures[what] = phase.failures.get(what, 0) + 1
            phase.record(kind, (time.perf_counter() - when) * 1000, ok)

    total = int(phase.seconds * rate)
    load0, cpu0, own0 = loadavg(), cpu_seconds(pid), time.process_time()
    workers0 = descendants_cpu(pid)
    start = time.perf_counter()
    try:  # bounded: what has not been answered GRACE_S after the last send counts as unfinished
        async with asyncio.timeout(phase.seconds + GRACE_S), asyncio.TaskGroup() as tg:
            for i in range(total):
                when = start + i / rate
                delay = when - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tg.create_task(one(when, *next_request()))
                phase.sent += 1
            phase.sending = time.perf_counter() - start
    except TimeoutError:
        pass
    phase.elapsed = time.perf_counter() - start
    phase.sending = phase.sending or phase.elapsed
    phase.unfinished = phase.sent - sum(map(len, phase.latencies.values()))
    phase.unfinished -= sum(phase.errors.values())
    phase.load, phase.server_cpu = (load0, loadavg()), cpu_seconds(pid) - cpu0
    phase.client_cpu = time.process_time() - own0
    workers = descendants_cpu(pid)
    phase.workers_cpu = sum(t - workers0.get(p, 0.0) for p, t in workers.items())


async def drain(c: httpx.AsyncClient, limit_s: float = 60) -> float:
    """Wait until the server answers /healthz quickly again (its backlog is gone)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        t = time.perf_counter()
        try:
            await c.get("/healthz", timeout=5)
            if time.perf_counter() - t < 0.05:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the server did not recover within {limit_s} s")


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| phase | sent/s | answered/s | request | p50 ms | p99 ms | errors | unfinished "
        "| load 1m | server CPU | ms CPU/answer | client CPU | workers CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["phases"].items():
        for kind in ("healthz", "get_stream", "patch_product"):
            if kind in r:
                rows.append(
                    f"| {name} | {r['rate']} | {r['answered_per_s']} | {kind} | "
                    f"{r[kind]['p50_ms']} | {r[kind]['p99_ms']} | {r['errors'].get(kind, 0)} | "
                    f"{r['unfinished']} | "
                    f"{r['load_1m'][0]}→{r['load_1m'][1]} | {r['server_cpu_pct']} % | "
                    f"{r['server_cpu_ms_per_answer']} | {r['client_cpu_pct']} % | "
                    f"{r['workers_cpu_pct']} % |"
                )
    return "\n".join(rows)


async def run(args: argparse.Namespace, server: Server, key: str) -> dict[str, Any]:
    rng = random.Random(1)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    headers = {"Authorization": f"Bearer {key}"}
    assert server.proc is not None
    pid = server.proc.pid
    async with httpx.AsyncClient(
        base_url=server.base, headers=headers, limits=limits, timeout=5
    ) as c:
        ids, products, sh = await setup(c, args.streams)
        phases: dict[str, Phase] = {}
        raw = RawClient("127.0.0.1", server.port, headers, size=100, timeout=5)

        async def send(method: str, path: str, body: Any) -> int:
            if args.client == "raw":
                return await raw.status(method, path, body)
            return (await c.request(method, path, json=body)).status_code

        log(f"healthz: {args.rate}/s for {args.seconds} s, no stream running")
        phases["healthz"] = p = Phase("healthz", args.seconds)
        await drive(send, p, args.rate, lambda: ("healthz", "GET", "/healthz", None), pid)
        await drain(c)

        log(f"idle: the mix at {args.rate}/s for {args.seconds} s, 0 streams running")
        phases["idle"] = p = Phase("idle", args.seconds)
        await drive(send, p, args.rate, mix(ids, products, args.patch_share, rng), pid)
        log(f"idle: server recovered after {await drain(c):.1f} s")

        for sid in ids:
            (await c.post(f"/v1/streams/{sid}/start")).raise_for_status()
        took = await wait_live(c, ids)
        log(f"{len(ids)} streams live after {took:.1f} s; settling 5 s")
        await asyncio.sleep(5)
        for sid in ids:  # fresh heartbeats: the phase stays well inside the 60 s timeout
            r = await c.post(f"/v1/streams/{sid}/supervisor/heartbeat", headers=sh)
            r.raise_for_status()
        log(f"live: the mix at {args.rate}/s for {args.seconds} s, {len(ids)} streams live")
        phases["live"] = p = Phase("live", args.seconds)
        await drive(send, p, args.rate, mix(ids, products, args.patch_share, rng), pid)
        log(f"live: server recovered after {await drain(c):.1f} s")
        states = [(await c.get(f"/v1/streams/{s}")).json()["status"] for s in ids]
        for sid in ids:
            await c.post(f"/v1/streams/{sid}/stop")
        await raw.aclose()

    results: dict[str, Any] = {
        "rate_asked": args.rate,
        "seconds": args.seconds,
        "streams": args.streams,
        "patch_share": args.patch_share,
        "client": args.client,
        "cpus": os.cpu_count(),
        "phases": {name: ph.summary() for name, ph in phases.items()},
        "streams_after": [
            {k: s.get(k) for k in ("state", "fps", "restarts", "encode_lag_ms")} for s in states
        ],
    }
    live, idle = results["phases"]["live"], results["phases"]["idle"]
    floor = results["phases"]["healthz"]["healthz"]["p99_ms"]
    results["ratios"] = {
        f"{kind}_p99_live_over_idle": round(live[kind]["p99_ms"] / idle[kind]["p99_ms"], 2)
        for kind in ("get_stream", "patch_product")
    } | {
        f"{kind}_p99_live_over_healthz": round(live[kind]["p99_ms"] / floor, 2)
        for kind in ("get_stream", "patch_product")
    }
    results["goal_p99_under_50ms"] = all(
        live[k]["p99_ms"] < 50 for k in ("get_stream", "patch_product")
    )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--patch-share", type=float, default=0.2)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="load generator: httpx (~1.5 ms CPU a request) or raw_http.RawClient (lighter)",
    )
    args = ap.parse_args()
    if not (0 < args.rate <= 2000 and 0 < args.seconds <= 300 and 0 <= args.streams <= 16):
        ap.error("bounded: rate 0..2000, seconds 0..300, streams 0..16")
    with tempfile.TemporaryDirectory(prefix="api-latency-") as tmp:
        server = Server(Path(tmp))
        key = server.key()
        server.start()
        try:
            results = asyncio.run(run(args, server, key))
        finally:
            server.stop()
    table = markdown(results)
    print(table, file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
