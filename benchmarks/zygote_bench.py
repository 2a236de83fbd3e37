"""Start to first frame through the control plane, and memory per stream, with the zygote
(``runner.zygote``) against cold-started workers, in the same run.

    python benchmarks/zygote_bench.py [--rounds 2] [--starts 3] [--streams 1,4] [--settle 10]
        [--modes zygote,cold] [--before SRC]

Each round starts ``avatarcast serve`` once per mode (``zygote``: on; ``cold``: off;
``before``: on, with ``PYTHONPATH=SRC``, an older tree's ``src`` such as a ``git archive`` of
the commit before, for a before/after in the same run; the spare worker off in all, as a
server's first start has none) against a throwaway nginx-rtmp on loopback. In each:

first frame  ``--starts`` times: a PyAV player waits on nginx for the stream's key, then
             ``POST /v1/streams/{id}/start``; the time from that request to the first video
             frame the player decodes (then the stream is stopped). Baseline, as in
             ``live_capacity.py``: a plain ``ffmpeg`` test-pattern publisher launched to its
             first decoded frame, measured in the same round.
memory       N streams (``--streams``) on air together, each with its RTMP destination (the
             runner gives every stream its WHEP child too); after ``--settle`` seconds, for each
             stream's processes (worker, WHEP child, RTMP push child: the worker's process
             tree, plus the helpers its zygote forked for it, found by the pipes they share with
             the worker): RSS, PSS (shared pages divided among the processes that map them) and
             USS (pages no other process maps), from ``/proc/PID/smaps_rollup``. The zygote's
             own figures are given apart (one per server, whatever the number of streams).

JSON on stdout, progress on stderr. Each figure is a median over rounds, with the 1-minute load
average beside it; the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_capacity import (  # noqa: E402
    CLK_TCK,
    ffmpeg_publisher,
    first_video_frame,
    loadavg,
    log,
    time_to_first_frame,
    tree,
)

from rtmp_server import RtmpServer  # noqa: E402
from served import FRYER, Served, serve  # noqa: E402

ON_AIR = ("live", "safe_mode")


def smaps(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of one process in MB."""
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        kb[name] = int(rest.split()[0])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return {"rss": kb["Rss"] / 1024, "pss": kb["Pss"] / 1024, "uss": uss / 1024}


def _pipes(pid: int) -> set[str]:
    out = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if (link := os.readlink(fd)).startswith("pipe:"):
                    out.add(link)
    return out


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def stream_processes(worker: int) -> list[int]:
    """The worker's process tree, and the helpers (RTMP push, WHEP) its zygote forked for it:
    the zygote's other children that hold one of the worker's pipes."""
    out = tree(worker)
    with contextlib.suppress(OSError, ValueError, IndexError):
        parent = _ppid(worker)
        if "avatarcast.runner.zygote" in Path(f"/proc/{parent}/cmdline").read_bytes().decode():
            mine = _pipes(worker)
            for pid in tree(parent):
                if pid not in out and pid != parent and _ppid(pid) == parent:
                    if _pipes(pid) & mine:
                        out += tree(pid)
    return out


def stream_cpu(worker: int) -> float:
    total = 0.0
    for p in stream_processes(worker):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def tree_memory(pid: int, processes: list[int] | None = None) -> dict[str, float]:
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0, "processes": 0.0}
    for p in tree(pid) if processes is None else processes:
        with contextlib.suppress(OSError, KeyError, ValueError):
            for k, v in smaps(p).items():
                total[k] += v
            total["processes"] += 1
    return {k: round(v, 1) for k, v in total.items()}


class Api:
    """A tenant's operator on duty, able to make and start streams to nginx."""

    def __init__(self, served: Served, nginx: RtmpServer) -> None:
        self.c = served.client("operator")
        self.nginx = nginx
        op = served.auth("operator")
        person = {"full_name": "Ana Lopez", "contact": "ana@example.com", "reference": "P-1"}
        self.sup = self.c.post("/v1/supervisors", json=person, headers=op).json()["id"]
        link = {"name": "me", "role": "operator", "supervisor_id": self.sup}
        key = self.c.post("/v1/keys", json=link, headers=op).json()["key"]
        self.c.headers.update({"Authorization": f"Bearer {key}"})
        self.c.post("/v1/products", json=FRYER)

    def stream(self, key: str) -> str:
        dest = {"name": key, "url": self.nginx.url("").rstrip("/"), "stream_key": key}
        r = self.c.post("/v1/destinations", json=dest)
        assert r.status_code == 201, r.text
        body = {"name": key, "destination_ids": [r.json()["id"]]}
        sid: str = self.c.post("/v1/streams", json=body).json()["id"]
        duty = self.c.post(f"/v1/streams/{sid}/supervisor/duty", json={"supervisor_id": self.sup})
        assert duty.status_code == 200, duty.text
        return sid

    def state(self, sid: str) -> str:
        return str(self.c.get(f"/v1/streams/{sid}").json()["status"]["state"])

    def start(self, sid: str) -> None:
        r = self.c.post(f"/v1/streams/{sid}/start")
        assert r.status_code == 200, r.text

    def stop(self, sid: str, wait_s: float = 60) -> None:
        self.c.post(f"/v1/streams/{sid}/stop")
        deadline = time.monotonic() + wait_s
        while self.state(sid) not in ("stopped", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)

    def worker(self, sid: str) -> int:
        items = self.c.get(f"/v1/streams/{sid}/events", params={"kind": "started"}).json()
        return int(items["items"][-1]["detail"]["pid"])


def first_frame_via_api(api: Api, key: str) -> tuple[float, float]:
    """From the start request to the first frame a waiting player decodes, and the CPU
    seconds the stream's process tree (worker, WHEP and RTMP children) had used by then: the
    part of a start that does not depend on the machine's load."""
    sid = api.stream(key)
    result: list[float | None] = []
    connected = threading.Event()
    url = api.nginx.url(key)
    reader = threading.Thread(
        target=lambda: result.append(first_video_frame(url, time.monotonic() + 120, connected))
    )
    reader.start()
    connected.wait(5)
    time.sleep(0.5)  # the player waits on nginx before the start
    t0 = time.monotonic()
    api.start(sid)
    reader.join(125)
    cpu = stream_cpu(api.worker(sid))  # the stream's processes so far: the start's CPU
    api.stop(sid)
    t = result[0] if result else None
    if t is None:
        raise RuntimeError(f"no frame on {key}")
    return t - t0, cpu


def wait_zygote(served: Served, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while "avatarcast.runner.forked: zygote" not in served.output():
        assert time.monotonic() < deadline, "the zygote did not get ready"
        time.sleep(0.2)


def memory_with(api: Api, n: int, settle: float, tag: str) -> dict[str, Any]:
    sids = [api.stream(f"{tag}m{n}_{i}") for i in range(n)]
    for sid in sids:
        api.start(sid)
    deadline = time.monotonic() + 400  # the shared machine: minutes at load 25-30
    while any(api.state(s) not in ON_AIR for s in sids):
        assert time.monotonic() < deadline, "streams did not go on air"
        time.sleep(0.5)
    time.sleep(settle)
    trees = [tree_memory(w, stream_processes(w)) for w in (api.worker(s) for s in sids)]
    load = loadavg()[0]
    for sid in sids:
        api.stop(sid)
    per = {k: round(statistics.mean(t[k] for t in trees), 1) for k in ("rss", "pss", "uss")}
    return {"n": n, "per_stream_mb": per, "trees": trees, "load": load}


def one_server(
    mode: str, work: Path, nginx: RtmpServer, args: argparse.Namespace, rnd: int
) -> dict[str, Any]:
    env = {
        "AVATARCAST_RUNNER__ZYGOTE": "false" if mode == "cold" else "true",
        "AVATARCAST_RUNNER__SPARE_WORKER": "false",
        "AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["127.0.0.1"]',
    }
    if mode == "before":
        env["PYTHONPATH"] = str(args.before)
    out: dict[str, Any] = {"mode": mode}
    with serve(work / f"{mode}-{rnd}", env, wait_s=300) as served:
        if mode != "cold":
            wait_zygote(served)
        api = Api(served, nginx)
        firsts, cpus, loads = [], [], []
        for i in range(args.starts):
            wall, cpu = first_frame_via_api(api, f"{mode}{rnd}f{i}")
            firsts.append(round(wall, 3))
            cpus.append(round(cpu, 2))
            loads.append(loadavg()[0])
            log(f"round {rnd} {mode}: first frame {wall:.2f} s, {cpu:.2f} CPU s")
            log(f"  (load {loads[-1]:.1f})")
        out |= {"first_frame_s": firsts, "start_cpu_s": cpus, "load": loads}
        out["memory"] = []
        for n in args.streams:  # logged as it comes: a run cut short still tells
            m = memory_with(api, n, args.settle, f"{mode}{rnd}")
            out["memory"].append(m)
            per, load = m["per_stream_mb"], m["load"]
            log(f"round {rnd} {mode}: {n} streams, per stream {per} (load {load:.1f})")
        zygotes = [
            p
            for p in tree(served.proc.pid)
            if "avatarcast.runner.zygote" in Path(f"/proc/{p}/cmdline").read_bytes().decode()
        ]
        out["zygote_mb"] = tree_memory(zygotes[0], zygotes[:1]) if zygotes else None
        log(f"round {rnd} {mode}: the zygote {out['zygote_mb']}")
        api.c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--modes", type=lambda s: s.split(","), default=["zygote", "cold"])
    ap.add_argument("--before", type=Path, help="an older tree's src, for --modes ...,before")
    args = ap.parse_args()
    if "before" in args.modes and args.before is None:
        ap.error("--modes before needs --before SRC")
    with tempfile.TemporaryDirectory(prefix="zygote-bench-") as tmp:
        work = Path(tmp)
        nginx = RtmpServer(work / "nginx")
        nginx.start()
        rounds: list[dict[str, Any]] = []
        try:
            for rnd in range(args.rounds):
                row: dict[str, Any] = {"load_at_start": loadavg()[0], "ffmpeg_s": []}
                for i in range(args.starts):  # first: a run cut short still has its baseline
                    key = f"ffmpeg{rnd}_{i}"
                    t = time_to_first_frame(nginx, ffmpeg_publisher(nginx.url(key)), key, work)
                    row["ffmpeg_s"].append(round(t, 3))
                log(f"round {rnd}: ffmpeg baseline {row['ffmpeg_s']}")
                for mode in args.modes:
                    row[mode] = one_server(mode, work, nginx, args, rnd)
                rounds.append(row)
        finally:
            nginx.stop()
    print(json.dumps({"rounds": rounds, "summary": summary(rounds, args.modes)}, indent=1))


def summary(rounds: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    def med(xs: list[float]) -> float:
        return round(statistics.median(xs), 3)

    out: dict[str, Any] = {"ffmpeg_s": med([x for r in rounds for x in r["ffmpeg_s"]])}
    for mode in modes:
        rows = [r[mode] for r in rounds]
        out[mode] = {
            "first_frame_s": med([x for r in rows for x in r["first_frame_s"]]),
            "start_cpu_s": med([x for r in rows for x in r["start_cpu_s"]]),
            "load": med([x for r in rows for x in r["load"]]),
            "memory": {
                m["n"]: {
                    k: med(
                        [
                            mm["per_stream_mb"][k]
                            for r in rows
                            for mm in r["memory"]
                            if mm["n"] == m["n"]
                        ]
                    )
                    for k in ("rss", "pss", "uss")
                }
                for m in rows[0]["memory"]
            },
        }
    for mode in modes:
        out[f"ratio_{mode}_to_ffmpeg"] = round(out[mode]["first_frame_s"] / out["ffmpeg_s"], 2)
    return out


if __name__ == "__main__":
    main()
