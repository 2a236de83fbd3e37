"""Server CPU per request, one request at a time: the cost of each route, free of queueing.

    python benchmarks/api_cpu.py [--requests 300]

Starts ``avatarcast serve`` as ``api_latency.py`` does (SQLite in a temp dir, the demo
catalog, 2 streams, not started), warms up, then sends ``--requests`` of each kind one after
another from httpx and divides the server process's CPU seconds by their number. Less
disturbed by the neighbours than wall-clock latency; still read the load next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_latency import Server, mix, setup
from procstat import cpu_seconds, loadavg


async def measure(server: Server, key: str, n: int) -> dict[str, Any]:
    assert server.proc is not None
    pid = server.proc.pid
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=10) as c:
        ids, products, _ = await setup(c, 2)
        kinds = {
            "healthz": lambda: ("healthz", "GET", "/healthz", None),
            "get_stream": mix(ids, products, 0.0, random.Random(1)),
            "patch_product": mix(ids, products, 1.0, random.Random(2)),
        }
        for _ in range(20):  # warm up: imports, caches, the first connection
            for make in kinds.values():
                _, method, path, body = make()
                (await c.request(method, path, json=body)).raise_for_status()
        out: dict[str, Any] = {"load_1m": loadavg()}
        for name, make in kinds.items():
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            for _ in range(n):
                _, method, path, body = make()
                (await c.request(method, path, json=body)).raise_for_status()
            out[name] = {
                "server_cpu_ms": round(1000 * (cpu_seconds(pid) - cpu0) / n, 2),
                "wall_ms": round(1000 * (time.perf_counter() - t0) / n, 2),
            }
        out["load_1m_after"] = loadavg()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    if not 10 <= args.requests <= 10_000:
        ap.error("--requests 10..10000")
    with tempfile.TemporaryDirectory(prefix="api-cpu-") as tmp:
        server = Server(Path(tmp))
        key = server.key()
        server.start()
        try:
            result = asyncio.run(measure(server, key, args.requests))
        finally:
            server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
