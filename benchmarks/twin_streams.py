"""N live twin streams through ``avatarcast serve``, as an operator runs them, against N streams
of the drawn presenter on the same server in the same run.

    python benchmarks/twin_streams.py --work DIR [--streams 8] [--seconds 30]

``DIR/avatars`` holds the twin pack (``twin_bench.py --parts prepare --work DIR`` makes
``benchtwin``; the drawn ``daan`` is copied in from the checkout). One ``avatarcast serve``
(the zygote on: workers fork from it, so a start costs ~1.4 CPU s instead of a cold
interpreter's ~4) and a throwaway nginx-rtmp on loopback. For each presenter: N streams made
through the API, each with an RTMP destination and a recording, a supervisor on duty sending
heartbeats (else the stream shows the safe-mode slate, not the presenter), started together
(the server's start-up slots let them take turns); once every stream is live, a window of
SECONDS: frames on time (late: made more than a frame period after their wall-clock time, from
each stream's own counters in its status), CPU per media second of each stream's process tree
(worker, WHEP and RTMP children), and its memory (RSS / PSS / USS). Streams are stopped before
the next presenter's start. JSON on stdout, progress on stderr; the load average beside every
figure (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_capacity import loadavg, log  # noqa: E402
from zygote_bench import (  # noqa: E402
    Api,
    stream_cpu,
    stream_processes,
    tree_memory,
    wait_zygote,
)

from rtmp_server import RtmpServer  # noqa: E402
from served import serve  # noqa: E402

FPS = 25
CLK_TCK = os.sysconf("SC_CLK_TCK")
BEAT_S = 10.0


class Operator(Api):
    """A tenant's operator who is also the streams' supervisor on duty (zygote_bench's, with
    twin streams that record and a heartbeat)."""

    def recorded_stream(self, key: str, avatar: str) -> str:
        dest = {"name": key, "url": self.nginx.url("").rstrip("/"), "stream_key": key}
        r = self.c.post("/v1/destinations", json=dest)
        assert r.status_code == 201, r.text
        body = {"name": key, "avatar": avatar, "record": True, "destination_ids": [r.json()["id"]]}
        r = self.c.post("/v1/streams", json=body)
        assert r.status_code == 201, r.text
        sid: str = r.json()["id"]
        duty = self.c.post(f"/v1/streams/{sid}/supervisor/duty", json={"supervisor_id": self.sup})
        assert duty.status_code == 200, duty.text
        return sid

    def status(self, sid: str) -> dict[str, Any]:
        status: dict[str, Any] = self.c.get(f"/v1/streams/{sid}").json()["status"]
        return status

    def beat(self, sid: str) -> None:
        self.c.post(f"/v1/streams/{sid}/supervisor/heartbeat")

    def stop_all(self, sids: list[str], wait_s: float = 60) -> None:
        for sid in sids:
            self.c.post(f"/v1/streams/{sid}/stop")
        deadline = time.monotonic() + wait_s
        for sid in sids:
            while self.status(sid)["state"] not in ("stopped", "failed"):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)


def stream_threads(worker: int) -> dict[str, float]:
    """CPU seconds so far of every thread of a stream's processes (the worker, and the RTMP
    and WHEP helpers its zygote forked for it), by OS thread name; a helper's main thread is
    named after its module."""
    out: dict[str, float] = {}
    for p in stream_processes(worker):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        helper = "whep" if "_whep_serve" in cmd else "rtmp" if "_rtmp_push" in cmd else None
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if p == worker:
                label = "main (event loop)" if task.name == str(p) else name
            else:
                label = f"{helper or 'helper'} child"
            label = re.sub(r"[_-]?\d+$", "", label)
            out[label] = out.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def run_group(op: Operator, avatar: str, n: int, seconds: float, tag: str) -> dict[str, Any]:
    sids = [op.recorded_stream(f"{tag}{i}", avatar) for i in range(n)]
    load_before = loadavg()[0]
    try:
        t0 = time.monotonic()
        for sid in sids:
            op.start(sid)
            op.beat(sid)
        deadline = time.monotonic() + 150
        while any(op.status(s)["state"] != "live" for s in sids):
            assert time.monotonic() < deadline, "streams did not go live"
            time.sleep(0.5)
        all_live = time.monotonic() - t0
        time.sleep(3.0)  # the last start's warm-up frames
        pids = [op.worker(s) for s in sids]
        first = [op.status(s) for s in sids]
        c0 = [stream_cpu(p) for p in pids]
        t0s = [stream_threads(p) for p in pids]
        loads, beat = [loadavg()[0]], time.monotonic()
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            time.sleep(1.0)
            loads.append(loadavg()[0])
            if time.monotonic() - beat > BEAT_S:
                for sid in sids:
                    op.beat(sid)
                beat = time.monotonic()
        last = [op.status(s) for s in sids]
        c1 = [stream_cpu(p) for p in pids]
        t1s = [stream_threads(p) for p in pids]
        mem = [tree_memory(p, stream_processes(p)) for p in pids]
    finally:
        op.stop_all(sids)
    rows = []
    for a, b, ca, cb, m in zip(first, last, c0, c1, mem, strict=True):
        frames = int(b.get("frames") or 0) - int(a.get("frames") or 0)
        late = int(b.get("late_frames") or 0) - int(a.get("late_frames") or 0)
        media = frames / FPS
        rows.append(
            {
                "frames": frames,
                "late_frames": late,
                "on_time": round(1 - late / frames, 4) if frames else 0.0,
                "late_before_window": int(a.get("late_frames") or 0),
                "cpu_per_media_s": round((cb - ca) / media, 3) if media else None,
                "mb": m,
                "slate": b.get("slate"),
                "rtmp": [d.get("state") for d in b.get("destinations") or []],
                "recording": b.get("recording"),
            }
        )
    on_time = [r["on_time"] for r in rows]
    media_s = sum(r["frames"] for r in rows) / FPS
    threads: dict[str, float] = {}
    for a_t, b_t in zip(t0s, t1s, strict=True):
        for name, v in b_t.items():
            threads[name] = threads.get(name, 0.0) + v - a_t.get(name, 0.0)
    cpu = [r["cpu_per_media_s"] or 0.0 for r in rows]
    return {
        "avatar": avatar,
        "n": n,
        "window_s": seconds,
        "all_live_after_s": round(all_live, 1),
        "min_on_time": min(on_time),
        "all_on_time_99_5": min(on_time) >= 0.995,
        "late_before_window_max": max(r["late_before_window"] for r in rows),
        "mean_cpu_s_per_media_s": round(statistics.mean(cpu), 3),
        "mean_mb": {
            k: round(statistics.mean(r["mb"][k] for r in rows), 1) for k in ("rss", "pss", "uss")
        },
        "load_1m_before": load_before,
        "load_1m_max": max(loads),
        "cpu_per_media_s_by_thread": {
            k: round(v / media_s, 4)
            for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
            if media_s and v > 0
        },
        "slates": sorted({str(r["slate"]) for r in rows}),
        "streams": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True, help="holds avatars/ with the twin pack")
    ap.add_argument("--twin", default="benchtwin")
    ap.add_argument("--drawn", default="daan")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument(
        "--presenters", default="twin,drawn", help="which groups to run: twin, drawn or both"
    )
    args = ap.parse_args()
    groups = [(g, args.twin if g == "twin" else args.drawn) for g in args.presenters.split(",")]
    # a timeout's SIGTERM must still stop serve, its workers and nginx (the machine is shared)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    avatars = args.work / "avatars"
    if "twin" in dict(groups) and not (avatars / args.twin / "manifest.json").is_file():
        sys.exit(f"{avatars / args.twin}: no twin pack (make one: twin_bench.py --parts prepare)")
    dest = avatars / args.drawn
    if not dest.exists():
        shutil.copytree(ROOT / "assets" / "avatars" / args.drawn, dest)
    env = {
        "AVATARCAST_ASSETS": str(avatars),
        "AVATARCAST_RUNNER__ZYGOTE": "true",
        "AVATARCAST_RUNNER__SPARE_WORKER": "false",
        "AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["127.0.0.1"]',
        "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "600",
        "AVATARCAST_QUOTAS__LIVE_STREAMS": str(max(5, args.streams)),  # a tenant's default: 5
    }
    run = args.work / f"streams-{int(time.time())}"
    nginx = RtmpServer(run / "nginx")
    nginx.start()
    out: dict[str, Any] = {"load_before": loadavg(), "streams": args.streams}
    try:
        with serve(run / "serve", env, wait_s=300) as served:
            wait_zygote(served)
            op = Operator(served, nginx)
            for label, avatar in groups:
                log(f"{args.streams} x {label} ({avatar}), load {loadavg()}")
                try:
                    out[label] = run_group(op, avatar, args.streams, args.seconds, label)
                except AssertionError as e:  # report the other presenter still
                    out[label] = {"error": str(e), "mean_cpu_s_per_media_s": None}
                    log(f"{label}: {e}")
                    continue
                row = out[label]
                log(
                    f"{label}: min on time {row['min_on_time']}, "
                    f"{row['mean_cpu_s_per_media_s']} CPU s/media s per stream, "
                    f"{row['mean_mb']} MB, load max {row['load_1m_max']}"
                )
            op.c.close()
    finally:
        nginx.stop()
    twin = out.get("twin", {}).get("mean_cpu_s_per_media_s")
    drawn = out.get("drawn", {}).get("mean_cpu_s_per_media_s")
    if twin is not None and drawn is not None:
        out["cpu_ratio_twin_to_drawn"] = round(twin / max(drawn, 1e-9), 2)
    out["load_after"] = loadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
