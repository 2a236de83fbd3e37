"""Heal time after a SIGKILL of a stream's worker, through a real ``avatarcast serve``.

    python benchmarks/heal_time.py [--kills 5] [--gap-s 8] [--out heal.json]

One stream (RTMP to a local nginx-rtmp, a recording) on the server's defaults (the zygote and
the spare worker on). Each round SIGKILLs the stream's worker and polls the API every 20 ms
until the new run is back on air, timing from the kill: the crash seen (state leaves ``live``),
the new worker's pid, ``live`` again, the first frames of the new run, its RTMP destination
``connected``, and then frames read back from nginx (ffprobe of the live stream). The load
average before and after goes beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rtmp_server import RtmpServer  # noqa: E402
from served import live_stream, serve  # noqa: E402

ENV = {
    "AVATARCAST_RUNNER__SPARE_WORKER": "true",
    "AVATARCAST_RUNNER__ZYGOTE": "true",
    "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",  # the nginx-rtmp on loopback
}


def worker_pid(c: httpx.Client, sid: str, run: int) -> int | None:
    kind = "started" if run == 0 else "restarted"
    items = c.get(f"/v1/streams/{sid}/events", params={"kind": kind}).json()["items"]
    for e in items:
        if e["detail"].get("restarts", 0) == run:
            return int(e["detail"]["pid"])
    return None


def nginx_frames(url: str, seconds: float = 1.0) -> int:
    """Video packets a viewer of ``url`` gets in ``seconds`` (0 when nothing plays)."""
    done = subprocess.run(
        [
            "ffprobe", "-v", "error", "-rw_timeout", "3000000", "-select_streams", "v",
            "-show_entries", "packet=pts", "-read_intervals", f"%+{seconds}", "-of", "json", url,
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return len(json.loads(done.stdout or "{}").get("packets", []))


def one_kill(c: httpx.Client, sid: str, run: int, play_url: str) -> dict[str, Any]:
    pid = worker_pid(c, sid, run)
    assert pid is not None, "no worker pid"
    killed_wall = time.time()
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    marks: dict[str, float] = {"killed_wall": killed_wall}
    while True:
        st = c.get(f"/v1/streams/{sid}").json()["status"]
        now = round(time.monotonic() - t0, 3)
        new_run = st["restarts"] > run
        if st["state"] != "live" and "crash_seen" not in marks:
            marks["crash_seen"] = now
        if new_run:
            marks.setdefault("restart_counted", now)
        if new_run and st["state"] == "live":
            marks.setdefault("live", now)
        if new_run and (st.get("frames") or 0) > 0:
            marks.setdefault("frames", now)
        dests = st.get("destinations") or []
        if new_run and dests and all(d["state"] == "connected" for d in dests):
            marks.setdefault("rtmp_connected", now)
        if {"live", "frames", "rtmp_connected"} <= marks.keys():
            break
        assert now < 120, (marks, st)
        time.sleep(0.02)
    while nginx_frames(play_url, 0.5) < 5:
        assert time.monotonic() - t0 < 120
    marks["nginx_read_done"] = round(time.monotonic() - t0, 3)
    return {"pid": pid, **marks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--gap-s", type=float, default=8.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="heal-time-"))
    rtmp = RtmpServer(work / "nginx")
    rtmp.start()
    rounds: list[dict[str, Any]] = []
    try:
        with serve(work / "serve", ENV) as s, s.client("operator", timeout=30) as c:
            d = {"name": "nginx", "url": rtmp.url("").rstrip("/"), "stream_key": "heal"}
            made = c.post("/v1/destinations", json=d)
            assert made.status_code == 201, made.text
            dest = made.json()["id"]
            sid, me = live_stream(
                c, s.auth("operator"), record=True, destination_ids=[dest], wait_s=240
            )
            c.headers.update(me)
            for run in range(args.kills):
                time.sleep(args.gap_s)  # the spare is made 5 s after it was taken
                # the supervisor on duty: without a heartbeat the stream goes to its slate
                assert c.post(f"/v1/streams/{sid}/supervisor/heartbeat").status_code == 200
                r = one_kill(c, sid, run, rtmp.url("heal"))
                print(json.dumps(r), flush=True)
                rounds.append(r)
            c.post(f"/v1/streams/{sid}/stop")
            log = s.output()
    finally:
        rtmp.stop()
    load_after = os.getloadavg()
    summary = {
        "kills": len(rounds),
        "rounds": rounds,
        "load_before": load_before,
        "load_after": load_after,
    }
    for key in ("crash_seen", "live", "frames", "rtmp_connected", "nginx_read_done"):
        values = [r[key] for r in rounds]
        summary[key] = {"median": statistics.median(values), "max": max(values)}
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))
        (args.out.with_suffix(".log")).write_text(log)


if __name__ == "__main__":
    main()
