"""Twin benchmarks: preparing a 2-minute recording, and concurrent live 720p25 twin streams.

- **prepare**: a reproducible 2-minute 1280x720 test recording (the astronaut, the English
  script read three times by espeak) becomes a pack with ``avatarcast avatars prepare``; wall
  and CPU time, against the bare decode of the same file (two decodes: the prepare reads it twice).
- **streams**: N ``avatarcast live --avatar <twin> --to rtmp://… --record …`` processes at once
  (``live_capacity.run_streams``: on time = 1 - late/frames from each final status line), and
  the same N with the drawn presenter in the same run, as the ratio's baseline.

``python benchmarks/twin_bench.py [--parts prepare,streams] [--streams 8] [--seconds 30]``;
JSON on stdout, progress on stderr. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import live_capacity as lc  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def part_prepare(work: Path, repeat: int) -> dict[str, Any]:
    video = work / "host.mp4"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from avatarcast.twinprep.testmedia import make_test_video; "
            f"make_test_video(Path(sys.argv[1]), width=1280, height=720, silence_s=5.0, "
            f"repeat={repeat})",
            str(video),
        ],
        check=True,
    )
    log(f"prepare: test video made in {time.perf_counter() - t0:.0f} s")
    c0, w0 = _children_cpu(), time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, av; c = av.open(sys.argv[1]); s = c.streams.video[0]; "
            "s.thread_type = 'AUTO'; [f.to_ndarray(format='rgb24') for f in c.decode(s)]",
            str(video),
        ],
        check=True,
    )
    decode_wall, decode_cpu = time.perf_counter() - w0, _children_cpu() - c0
    info = lc_probe(video)
    c0, w0 = _children_cpu(), time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "avatarcast.cli",
            "avatars",
            "prepare",
            "--video",
            str(video),
            "--name",
            "benchtwin",
            "--root",
            str(work / "avatars"),
            "--person",
            "astronaut (PD)",
            "--consent-ref",
            "public domain",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall, cpu = time.perf_counter() - w0, _children_cpu() - c0
    return {
        "video_s": info,
        "prepare_wall_s": round(wall, 1),
        "prepare_cpu_s": round(cpu, 1),
        "decode_wall_s": round(decode_wall, 1),
        "decode_cpu_s": round(decode_cpu, 1),
        "ratio_to_two_decodes": round(wall / (2 * decode_wall), 2),
        "goal_wall_s": 120,
    }


def lc_probe(video: Path) -> float:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(video),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return round(float(out), 1)


def part_streams(work: Path, n: int, seconds: float) -> dict[str, Any]:
    server = lc.RtmpServer(work / "nginx")
    server.start()
    base_live = list(lc.LIVE)
    rows: dict[str, Any] = {}
    try:
        for label, extra in (("twin", ["--avatar", "benchtwin"]), ("drawn", [])):
            lc.LIVE = [*base_live, *extra]
            log(f"streams: {n} x {label} for {seconds:.0f} s, load {lc.loadavg()}")
            row = lc.run_streams(server, n, seconds, work / label)
            log(
                f"streams: {label}: min on time {row['min_on_time']}, "
                f"{row['mean_cpu_s_per_media_s']} CPU s/media s per stream"
            )
            rows[label] = row
    finally:
        lc.LIVE = base_live
        server.stop()
    twin, drawn = rows["twin"], rows["drawn"]
    return {
        "n": n,
        "seconds": seconds,
        "twin": twin,
        "drawn": drawn,
        "cpu_ratio_twin_to_drawn": round(
            twin["mean_cpu_s_per_media_s"] / max(drawn["mean_cpu_s_per_media_s"], 1e-9), 2
        ),
        "goal_streams": 8,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="prepare,streams")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3, help="script readings in the test video")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="twin-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "twin").mkdir(exist_ok=True)
    (work / "drawn").mkdir(exist_ok=True)
    os.environ["AVATARCAST_ASSETS"] = str(work / "avatars")
    res: dict[str, Any] = {"load_before": lc.loadavg(), "cores": len(os.sched_getaffinity(0))}
    parts = args.parts.split(",")
    if "prepare" in parts:
        res["prepare"] = part_prepare(work, args.repeat)
        log(f"prepare: {res['prepare']}")
    if "streams" in parts:
        for drawn in ("daan", "mila"):
            dest = work / "avatars" / drawn
            if not dest.exists():
                import shutil

                shutil.copytree(ROOT / "assets" / "avatars" / drawn, dest)
        res["streams"] = part_streams(work, args.streams, args.seconds)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
