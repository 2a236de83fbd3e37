"""How fast a stream on Ray is back on air after its actor's process or its node dies.

    python benchmarks/ray_recovery.py [--kills 2] [--settings deployed|old]

A two-node Ray cluster on loopback (head 127.0.0.3, a second node 127.0.0.2, 2 CPUs each)
with the settings of ``runner/cluster.py`` (``--settings deployed``: its ``SYSTEM_CONFIG``
and ``NODE_ENV``, as ``tests/test_runner_ray.py`` starts it) or those before them
(``--settings old``: health checks 0.5 s x 4 with Ray's 10 s timeout, Ray's 30 s drain on
SIGTERM, no prestarted workers), an
``avatarcast serve`` with ``runner.backend = "ray"`` and nginx-rtmp with its ``rtmp_stat`` page.
Two streams go on air (SPREAD: one per node). Then:

local          first, the baseline: the local backend's worker of one stream SIGKILLed
               ``--kills`` times (same measure): the worker's own start, without Ray.

actor SIGKILL  ``--kills`` times, the actor's process of a stream is SIGKILLed; seconds from
               the kill until nginx has a new publisher of that stream's key whose byte count
               moves (frames coming in), and until ``GET /v1/streams/{id}`` shows it live
               again. Goal (issue #16): 3 s. ``worker_s``: until the API recorded the
               ``restarted`` event (Ray's part: the new actor up, given its spec, its worker
               forked); the rest is the worker's own start, as on the local backend.
               ``off_air_s``: from the old publisher's last moving byte count to the new one's.
node stopped   the second node's ``ray start --block`` is terminated (its raylet, its actors
               and their workers end); seconds until every stream it ran has a new publisher
               on nginx with bytes moving (``worker_s`` as above). Goal: 10 s. With the old settings
               the node drains 30 s first, its streams on air meanwhile: ``off_air_s`` is
               the outage viewers see, ``nginx_s`` the time until the stream has moved.

JSON on stdout, progress on stderr, the 1-minute load average beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_capacity import loadavg, log  # noqa: E402

from rtmp_server import free_port  # noqa: E402
from served import live_stream, serve  # noqa: E402
from test_runner_ray import (  # noqa: E402
    HEAD_IP,
    NODE_ENV,
    NODE_IP,
    QUIET,
    SYSTEM_CONFIG,
    StatRtmp,
    _end,
    _leftovers,
    _ray_start,
    events,
    health,
    last_run,
    until,
)


def worker_s(c: Any, sid: str, since: float) -> float:
    """Seconds from ``since`` (wall clock) to the stream's newest ``restarted`` event."""
    newest = max(events(c, sid, "restarted"), key=lambda e: int(e["id"]))
    at = datetime.fromisoformat(newest["time"])
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return round(at.timestamp() - since, 2)


#: before issue #16's second pass: Ray's drain on SIGTERM and health check timeout, no prestart
OLD_CONFIG = '{"health_check_period_ms":500,"health_check_failure_threshold":4}'


def cluster(work: Path, settings: str) -> tuple[str, list[Any], Path]:
    temp_dir = Path(tempfile.gettempdir()) / f"rr{os.getpid()}"
    port = free_port()
    old = settings == "old"
    env = {**os.environ, **(QUIET if old else NODE_ENV)}
    config = OLD_CONFIG if old else SYSTEM_CONFIG
    common = ["--num-cpus=2", "--object-store-memory=80000000"]
    head = _ray_start(
        [
            "--head",
            f"--port={port}",
            f"--node-ip-address={HEAD_IP}",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            f"--system-config={config}",
            *common,
        ],
        work / "head.log",
        env,
        temp_dir,
    )
    node = _ray_start(
        [f"--address={HEAD_IP}:{port}", f"--node-ip-address={NODE_IP}", *common],
        work / "node.log",
        env,
        temp_dir,
    )
    return f"{HEAD_IP}:{port}", [head, node], temp_dir


def off_air(rtmp: StatRtmp, key: str, since: float, within: float) -> tuple[float, float]:
    """``(gone, back)``: seconds from ``since`` (monotonic) to the last poll that saw the old
    publisher's bytes move, and to the first that saw a new publisher's bytes move."""
    gone, last, fresh = 0.0, None, None
    while True:
        now = time.monotonic()
        assert now - since < within, f"{key} not on air again within {within} s"
        got = rtmp.publisher(key)
        if got is not None and got[0] >= now - since:  # the old publisher
            if last is not None and got[1] > last:
                gone = now - since
            last = got[1]
        elif got is not None:  # a new one
            if fresh is not None and got[1] > fresh:
                return round(gone, 2), round(now - since, 2)
            fresh = got[1]
        time.sleep(0.05)


def kill(c: Any, rtmp: StatRtmp, sid: str, key: str, what: str) -> dict[str, Any]:
    """SIGKILL the process ``what`` names in the stream's last run (``actor_pid``, ``pid``)."""
    run = last_run(c, sid)
    restarts = health(c, sid)["restarts"]
    load = loadavg()[0]
    os.kill(int(run[what]), signal.SIGKILL)
    killed, wall = time.monotonic(), time.time()
    gone_s, nginx_s = off_air(rtmp, key, killed, 120)

    def moving() -> bool:
        h = health(c, sid)
        return bool(h["restarts"] > restarts and h["state"] == "live" and h["frames"] > 0)

    until(moving, 120, "the stream's health did not show it back")
    out = {
        "killed": what,
        "node_ip": run.get("node_ip"),
        "worker_s": worker_s(c, sid, wall),
        "nginx_s": nginx_s,
        "off_air_s": round(nginx_s - gone_s, 2),
        "health_s": round(time.monotonic() - killed, 2),
        "load": [load, loadavg()[0]],
    }
    log(f"SIGKILL: {out}")
    time.sleep(3)  # the new run past its start
    return out


def node_stop(c: Any, rtmp: StatRtmp, node: Any, streams: dict[str, str]) -> dict[str, Any]:
    moved = {sid: key for sid, key in streams.items() if last_run(c, sid)["node_ip"] == NODE_IP}
    load = loadavg()[0]
    node.terminate()
    stopped, wall = time.monotonic(), time.time()
    gaps = {sid: off_air(rtmp, key, stopped, 120) for sid, key in moved.items()}
    node.wait(60)
    for sid in moved:
        until(lambda sid=sid: last_run(c, sid)["node_ip"] == HEAD_IP, 60, "no restarted event")
    out = {
        "streams": len(moved),
        "worker_s": {sid: worker_s(c, sid, wall) for sid in moved},
        "nginx_s": {sid: back for sid, (_, back) in gaps.items()},
        "off_air_s": {sid: round(back - gone, 2) for sid, (gone, back) in gaps.items()},
        "load": [load, loadavg()[0]],
    }
    log(f"node stopped: {out}")
    return out


ENV = {
    **QUIET,
    "AVATARCAST_RUNNER__ZYGOTE": "true",  # the default (tests/served.py turns it off)
    "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
    "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "3600",
}


def on_air(s: Any, c: Any, rtmp: StatRtmp, n: int, prefix: str) -> dict[str, str]:
    streams: dict[str, str] = {}
    for i in range(n):
        key = f"{prefix}{i}"
        dest = c.post("/v1/destinations", json={"name": key, "url": rtmp.url(key)})
        sid, _ = live_stream(
            c, s.auth("admin"), wait_s=180, name=f"night-{i}", destination_ids=[dest.json()["id"]]
        )
        streams[sid] = key
    time.sleep(3)  # past the start's own work
    return streams


def local_leg(work: Path, rtmp: StatRtmp, kills: int) -> list[dict[str, Any]]:
    """The same SIGKILL of the local backend's worker: the baseline of the worker's start."""
    with serve(work / "local", ENV, wait_s=300) as s, s.client("admin") as c:
        [(sid, key)] = on_air(s, c, rtmp, 1, "lr").items()
        return [kill(c, rtmp, sid, key, "pid") for _ in range(kills)]


def ray_leg(work: Path, rtmp: StatRtmp, kills: int, settings: str) -> dict[str, Any]:
    address, nodes, temp_dir = cluster(work, settings)
    env = {
        **ENV,
        "AVATARCAST_RUNNER__BACKEND": "ray",
        "AVATARCAST_RUNNER__RAY_ADDRESS": address,
        "AVATARCAST_RUNNER__RAY_NUM_CPUS": "0.5",
        "AVATARCAST_RUNNER__RAY_MEMORY_MB": "64",
    }
    try:
        with serve(work / "ray", env, wait_s=300) as s, s.client("admin") as c:
            streams = on_air(s, c, rtmp, 2, "rr")
            log(f"on air: {[last_run(c, sid)['node_ip'] for sid in streams]}")
            order = list(streams)
            picked = [order[i % 2] for i in range(kills)]
            return {
                "actor_sigkill": [kill(c, rtmp, sid, streams[sid], "actor_pid") for sid in picked],
                "node_stop": node_stop(c, rtmp, nodes[1], streams),
            }
    finally:
        for proc in reversed(nodes):
            _end(proc)
        _leftovers(temp_dir)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--settings", choices=("deployed", "old"), default="deployed")
    ap.add_argument("--no-local", action="store_true", help="skip the local baseline")
    args = ap.parse_args()
    load = loadavg()
    result: dict[str, Any] = {"settings": args.settings}
    with tempfile.TemporaryDirectory(prefix="ray-recovery-") as tmp:
        work = Path(tmp)
        rtmp = StatRtmp(work / "nginx")
        rtmp.start()
        try:
            if not args.no_local:
                result["local_worker_sigkill"] = local_leg(work, rtmp, args.kills)
            result |= ray_leg(work, rtmp, args.kills, args.settings)
        finally:
            rtmp.stop()
    result["load_before_after"] = [load, loadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
