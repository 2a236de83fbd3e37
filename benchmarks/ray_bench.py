"""What Ray costs a stream, against the local backend on one node, in the same run.

    python benchmarks/ray_bench.py [--starts 2] [--streams 2] [--window 20]
                                   [--with-old]

Two ``avatarcast serve`` in turn against one nginx-rtmp on loopback: ``local`` (the default
backend, its zygote on) and ``ray`` (``runner.backend = "ray"`` on a one-node cluster,
``ray start --head`` on loopback, its node zygote warmed by one start first, as the local
server's zygote is waited for). The node runs as ``runner/cluster.py`` deploys it
(``NODE_ENV``: 4 prestarted Ray workers with the actor's module imported); ``--with-old``
adds a third server on a node as before (no prestarted workers), in the same run.

first frame  ``--starts`` times: a PyAV player waits on nginx, then
             ``POST /v1/streams/{id}/start``; seconds to the first decoded frame
             (``zygote_bench.first_frame_via_api``).
per stream   ``--streams`` streams on air; over ``--window`` seconds, CPU seconds of each
             stream's process tree (worker, WHEP child, RTMP push child), of the API process,
             and with Ray of each stream's actor and the actor's own zygote (forked from the
             node's); then RSS, PSS and USS of each (``/proc/PID/smaps_rollup``). Ray's
             overhead per stream = its actor + the actor's zygote + the API's extra CPU / N.
             The cluster's own processes (GCS, raylet, ...) and the node's zygote are given
             apart: a fixed cost per cluster and per node.

JSON on stdout, progress on stderr, the 1-minute load average beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_capacity import loadavg, log, tree  # noqa: E402
from procstat import cpu_seconds  # noqa: E402
from ray_recovery import OLD_CONFIG  # noqa: E402
from zygote_bench import ON_AIR, Api, first_frame_via_api, smaps, wait_zygote  # noqa: E402

from rtmp_server import RtmpServer, free_port  # noqa: E402
from served import serve  # noqa: E402
from test_runner_ray import (  # noqa: E402
    HEAD_IP,
    NODE_ENV,
    QUIET,
    SYSTEM_CONFIG,
    _end,
    _leftovers,
    _ray_start,
    process_started,
)


def _is_actor(pid: int) -> bool:
    """A Ray worker that runs a stream actor (``runner.ray_spares``: an idle one)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::StreamHost")
    except OSError:
        return False


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def run_of(api: Api, sid: str) -> dict[str, Any]:
    items = api.c.get(f"/v1/streams/{sid}/events", params={"kind": "started"}).json()["items"]
    return dict(max(items, key=lambda e: int(e["id"]))["detail"])


def cpu(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except (OSError, IndexError, ValueError):
            pass
    return total


def memory(pids: list[int]) -> dict[str, float]:
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for p in pids:
        try:
            for k, v in smaps(p).items():
                total[k] += v
        except (OSError, KeyError, ValueError):
            pass
    return {k: round(v, 1) for k, v in total.items()}


def per_stream(api: Api, api_pid: int, n: int, window: float, ray: bool) -> dict[str, Any]:
    sids = [api.stream(f"{'r' if ray else 'l'}m{i}") for i in range(n)]
    for sid in sids:
        api.start(sid)
    deadline = time.monotonic() + 400
    while any(api.state(s) not in ON_AIR for s in sids):
        assert time.monotonic() < deadline, "streams did not go on air"
        time.sleep(0.5)
    time.sleep(5)  # past the start's own work
    groups: dict[str, list[list[int]]] = {"stream": [], "actor": [], "actor_zygote": []}
    for sid in sids:
        run = run_of(api, sid)
        worker = int(run["pid"])
        groups["stream"].append(tree(worker))
        if ray:
            groups["actor"].append([int(run["actor_pid"])])
            groups["actor_zygote"].append([parent(worker)])
    load0 = loadavg()[0]
    before = {g: [cpu(p) for p in ps] for g, ps in groups.items()}
    api0 = cpu_seconds(api_pid)
    time.sleep(window)
    api_cpu = (cpu_seconds(api_pid) - api0) / window
    out: dict[str, Any] = {"n": n, "window_s": window, "load": [load0, loadavg()[0]]}
    for g, ps in groups.items():
        if not ps:
            continue
        rates = [(cpu(p) - b) / window for p, b in zip(ps, before[g], strict=True)]
        mems = [memory(p) for p in ps]
        out[g] = {
            "cpu_share": round(statistics.mean(rates), 4),
            **{k: round(statistics.mean(m[k] for m in mems), 1) for k in ("rss", "pss", "uss")},
        }
    out["api_cpu_share"] = round(api_cpu, 4)
    if ray:  # the node's zygote, which forked each actor's: a fixed cost per node
        out["node_zygote"] = memory([parent(groups["actor_zygote"][0][0])])
    for sid in sids:
        api.stop(sid)
    return out


class WatchedApi(Api):
    """An ``Api`` that notes, for each stream it stops, whether its actor ran in a Ray worker
    started before the stream was (a prestarted one) or for it."""

    def __init__(self, served: Any, nginx: RtmpServer) -> None:
        super().__init__(served, nginx)
        self.asked: dict[str, float] = {}
        self.prestarted: list[bool] = []
        #: per stream stopped: whether its actor was a claimed spare (``runner.ray_spares``)
        self.spare: list[bool] = []

    def start(self, sid: str) -> None:
        self.asked[sid] = time.time()
        super().start(sid)

    def stop(self, sid: str, wait_s: float = 60) -> None:
        items = self.c.get(f"/v1/streams/{sid}/events", params={"kind": "started"}).json()
        pids = [e["detail"].get("actor_pid") for e in items["items"]]
        if pids and pids[0] is not None and sid in self.asked:
            self.prestarted.append(process_started(int(pids[0])) < self.asked[sid] - 1)
            self.spare.append(bool(items["items"][0]["detail"].get("spare")))
        super().stop(sid, wait_s)


def one_server(
    mode: str, work: Path, nginx: RtmpServer, args: argparse.Namespace, *, old: bool = False
) -> Any:
    env = {
        "AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["127.0.0.1"]',
        "AVATARCAST_RUNNER__ZYGOTE": "true",  # the default (tests/served.py turns it off)
        **QUIET,
    }
    cluster = None
    if mode == "ray":
        temp_dir = Path(tempfile.gettempdir()) / f"rb{os.getpid()}"
        port = free_port()
        head = _ray_start(
            [
                "--head",
                f"--port={port}",
                f"--node-ip-address={HEAD_IP}",
                "--num-cpus=4",
                "--include-dashboard=false",
                "--object-store-memory=80000000",
                f"--temp-dir={temp_dir}",
                f"--system-config={OLD_CONFIG if old else SYSTEM_CONFIG}",
            ],
            work / "head.log",
            {**os.environ, **(QUIET if old else NODE_ENV)},
            temp_dir,
        )
        cluster = (head, temp_dir)
        env |= {
            "AVATARCAST_RUNNER__BACKEND": "ray",
            "AVATARCAST_RUNNER__RAY_ADDRESS": f"{HEAD_IP}:{port}",
            "AVATARCAST_RUNNER__RAY_NUM_CPUS": "0.5",
            "AVATARCAST_RUNNER__RAY_MEMORY_MB": "64",
        }
    out: dict[str, Any] = {"mode": mode}
    try:
        with serve(work / mode, env, wait_s=300) as served:
            api = WatchedApi(served, nginx)
            if mode == "local":
                wait_zygote(served)
            else:  # the node's zygote starts with the first actor: warm it, untimed
                first_frame_via_api(api, "warm")
            firsts, cpus, loads = [], [], []
            for i in range(args.starts):
                wall, start_cpu = first_frame_via_api(api, f"{mode}f{i}")
                firsts.append(round(wall, 3))
                cpus.append(round(start_cpu, 2))
                loads.append(loadavg()[0])
                log(f"{mode}: first frame {wall:.2f} s, {start_cpu:.2f} CPU s, load {loads[-1]}")
            out |= {"first_frame_s": firsts, "start_cpu_s": cpus, "load": loads}
            if mode == "ray":  # the warm start's first, then each timed start's
                out["actor_prestarted"] = list(api.prestarted)
                out["actor_spare"] = list(api.spare)
            out["per_stream"] = per_stream(
                api, served.proc.pid, args.streams, args.window, mode == "ray"
            )
            log(f"{mode}: {json.dumps(out['per_stream'])}")
            if cluster is not None:
                time.sleep(3)  # the stopped streams' actors ended: what is left are spares
                spares = [p for p in tree(cluster[0].pid) if _is_actor(p)]
                out["idle_spares"] = {
                    "n": len(spares),
                    **{k: round(v / max(len(spares), 1), 1) for k, v in memory(spares).items()},
                }
                fixed = [p for p in tree(cluster[0].pid) if p != cluster[0].pid]
                fixed = [p for p in fixed if p not in spares]
                out["cluster_fixed"] = {"processes": len(fixed), **memory(fixed)}
            api.c.close()
    finally:
        if cluster is not None:
            _end(cluster[0])
            _leftovers(cluster[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--with-old", action="store_true", help="also Ray as before #16's 2nd pass")
    args = ap.parse_args()
    load = loadavg()
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        work = Path(tmp)
        nginx = RtmpServer(work / "nginx")
        nginx.start()
        try:
            runs = {mode: one_server(mode, work, nginx, args) for mode in ("local", "ray")}
            if args.with_old:
                (work / "old").mkdir()
                runs["ray_old"] = one_server("ray", work / "old", nginx, args, old=True)
        finally:
            nginx.stop()
    local, ray = runs["local"], runs["ray"]
    lp, rp = local["per_stream"], ray["per_stream"]
    overhead = {
        "cpu_share": round(
            rp["actor"]["cpu_share"]
            + rp["actor_zygote"]["cpu_share"]
            + (rp["api_cpu_share"] - lp["api_cpu_share"]) / args.streams,
            4,
        ),
        **{k: round(rp["actor"][k] + rp["actor_zygote"][k], 1) for k in ("rss", "pss", "uss")},
    }
    summary = {
        "first_frame_s": {
            "local": statistics.median(local["first_frame_s"]),
            "ray": statistics.median(ray["first_frame_s"]),
            **(
                {"ray_old": statistics.median(runs["ray_old"]["first_frame_s"])}
                if "ray_old" in runs
                else {}
            ),
        },
        "ray_overhead_per_stream": overhead,
        "stream_tree": {"local": lp["stream"], "ray": rp["stream"]},
        "load_before_after": [load, loadavg()],
    }
    print(json.dumps({"runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
