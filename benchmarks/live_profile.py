"""Where one live stream spends its CPU: py-spy on an ``avatarcast live`` process.

    pip install py-spy
    python benchmarks/live_profile.py [--seconds 10] [--native] [--gil] [--top 10]

Starts a throwaway nginx-rtmp on loopback (tests/rtmp_server.py) and one 720p25 live stream
that pushes to it and records, waits until it has been on air for 3 s, then samples it (and
its children: the RTMP push process) with ``py-spy record`` for SECONDS. Prints the top
functions by own samples (the leaf of the stack) and by inclusive samples, as JSON and as a
markdown table on stderr. py-spy's idle detection misses some waits (a thread pool worker
blocked on its queue, the selector), so read ``--gil`` too. Without ``--native`` time inside
C code (libx264, numpy) is charged to the Python function that called it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rtmp_server import RtmpServer  # noqa: E402

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['fn']} ({path})"


def parse(raw: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return total, own, incl


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of every thread of ``pid`` and of its children, by thread name."""
    out: collections.Counter[str] = collections.Counter()
    pids = [pid] + [
        int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _ppid(e.name) == pid
    ]
    for p in pids:
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            label = re.sub(r"[_-]?\d+$", "", name) + ("" if p == pid else " (child)")
            out[label] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return dict(out)


def _ppid(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--native", action="store_true")
    ap.add_argument("--gil", action="store_true", help="only samples of threads holding the GIL")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="live-profile-") as tmp:
        work = Path(tmp)
        server = RtmpServer(work / "nginx")
        server.start()
        argv = [sys.executable, "-m", "avatarcast.cli", "live"]
        argv += ["--catalog", str(ROOT / "configs/demo-catalog.json")]
        argv += ["--to", server.url("profile"), "--record", str(work / "rec")]
        argv += ["--duration", str(args.seconds + 20), "--status-json"]
        live = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert live.stdout is not None
            first = json.loads(live.stdout.readline())  # the first status: on air for 1 s
            time.sleep(2)
            load = Path("/proc/loadavg").read_text().split()[:3]
            out = work / "profile.txt"
            spy = ["py-spy", "record", "--pid", str(live.pid), "--duration", str(args.seconds)]
            spy += ["--rate", "100", "--format", "raw", "--output", str(out), "--subprocesses"]
            spy += ["--native"] if args.native else []
            spy += ["--gil"] if args.gil else []
            cpu0, t0 = thread_cpu(live.pid), time.monotonic()
            subprocess.run(spy, check=True, timeout=args.seconds + 60, capture_output=True)
            cpu1, wall = thread_cpu(live.pid), time.monotonic() - t0
            by_thread = {k: round((v - cpu0.get(k, 0.0)) / wall, 3) for k, v in cpu1.items()}
            total, own, incl = parse(out.read_text())
        finally:
            live.send_signal(signal.SIGTERM)
            try:
                live.wait(30)
            except subprocess.TimeoutExpired:
                live.kill()
                live.wait(10)
            server.stop()
    res = {
        "seconds": args.seconds,
        "rate_hz": 100,
        "samples": total,
        "busy_cores": round(total / 100 / args.seconds, 2),
        "load_1m_5m_15m": load,
        "state_at_start": first.get("state"),
        "cores_by_thread": dict(sorted(by_thread.items(), key=lambda kv: -kv[1])),
        "top_own": [(f, n, round(n / total, 3)) for f, n in own.most_common(args.top)],
        "top_inclusive": [(f, n, round(n / total, 3)) for f, n in incl.most_common(args.top)],
    }
    print(json.dumps(res, indent=2))
    rows = ["| # | function (own samples) | share |", "|---|---|---|"]
    rows += [f"| {i} | `{f}` | {s:.1%} |" for i, (f, _, s) in enumerate(res["top_own"], 1)]
    print("\n".join(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
