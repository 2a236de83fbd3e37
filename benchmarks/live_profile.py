"""Where one live stream spends its CPU: py-spy on an ``avatarcast live`` process.

    pip install py-spy
    python benchmarks/live_profile.py [--seconds 10] [--native] [--gil] [--top 10] [--no-spy]
        [--whep] [--bare]

Starts a throwaway nginx-rtmp on loopback (tests/rtmp_server.py) and one 720p25 live stream
that pushes to it and records, waits until it has been on air for 3 s, then reads the CPU time
of every thread (``/proc/PID/task/*/stat``, by the OS thread name avatarcast gives each one:
compose, encode, x264, recorder, rtmp-feed, voice...; the main thread runs the event loop) and
of the RTMP push child, over SECONDS, as CPU seconds per media second. With py-spy (default;
``--no-spy`` skips it, as sampling costs CPU itself) it also samples the process and the child
with ``py-spy record`` over the same window. Prints the top
functions by own samples (the leaf of the stack) and by inclusive samples, as JSON and as a
markdown table on stderr. py-spy's idle detection misses some waits (a thread pool worker
blocked on its queue, the selector), so read ``--gil`` too. Without ``--native`` time inside
C code (libx264, numpy) is charged to the Python function that called it. ``--whep`` serves
WHEP with no viewer, as every stream of ``serve`` does; ``--bare`` then encodes the first 10 s
of the stream's own recording (picture and sound) with the live ``Encoder`` alone, in this
process: the baseline of the ratio.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
            if task.name == str(p):
                name = "main (event loop)" if p == pid else name
            label = re.sub(r"[_-]?\d+$", "", name) + ("" if p == pid else " (child)")
            out[label] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return dict(out)


def _read_status(live: subprocess.Popen[str], into: list[dict[str, Any]]) -> None:
    assert live.stdout is not None
    for line in live.stdout:
        with contextlib.suppress(ValueError):
            into.append(json.loads(line))


def _stage(statuses: list[dict[str, Any]]) -> tuple[float, dict[str, float]]:
    """Media seconds and per-stage CPU seconds of the latest status line."""
    last = statuses[-1] if statuses else {}
    return float(last.get("media_time_s", 0.0)), dict(last.get("stage_cpu_s") or {})


def bare_encode(recording: Path, frames_n: int = 250) -> dict[str, float]:
    """CPU s per media s of the live ``Encoder`` alone on the stream's own recorded frames and
    sound (the first ``frames_n``), in this process: the baseline of the same run."""
    import av
    import numpy as np

    from avatarcast.frames import ProgrammeFrame, StreamFormat
    from avatarcast.output.encoder import Encoder

    fmt = StreamFormat(width=1280, height=720, fps=25)
    first = sorted(recording.rglob("*.mp4"))[0]
    yuv: list[Any] = []
    sound: list[Any] = []
    with av.open(str(first)) as c:
        for frame in c.decode(video=0):
            yuv.append(frame.to_ndarray(format="yuv420p").ravel().copy())
            if len(yuv) >= frames_n:
                break
    with av.open(str(first)) as c:
        for af in c.decode(audio=0):
            sound.append(af.to_ndarray()[0])
    spf = fmt.samples_per_frame
    pcm = (np.clip(np.concatenate(sound), -1, 1) * 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, max(0, len(yuv) * spf - len(pcm))))
    enc = Encoder(fmt)  # the live encoder, same defaults
    c0 = time.process_time()
    for i, y in enumerate(yuv):
        enc.encode(ProgrammeFrame(pts=i, yuv=y, pcm=pcm[i * spf : (i + 1) * spf]))
    enc.flush()
    cpu = time.process_time() - c0
    return {"frames": len(yuv), "cpu_s_per_media_s": round(cpu / (len(yuv) / 25), 4)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    ap.add_argument("--no-spy", action="store_true", help="thread CPU only, no py-spy sampling")
    ap.add_argument(
        "--whep", action="store_true", help="serve WHEP (no viewer), as served streams do"
    )
    ap.add_argument("--bare", action="store_true", help="then the bare encode of its recording")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="live-profile-") as tmp:
        work = Path(tmp)
        server = RtmpServer(work / "nginx")
        server.start()
        argv = [sys.executable, "-m", "avatarcast.cli", "live"]
        argv += ["--catalog", str(ROOT / "configs/demo-catalog.json")]
        argv += ["--to", server.url("profile"), "--record", str(work / "rec")]
        argv += ["--duration", str(args.seconds + 20), "--status-json"]
        argv += ["--whep-port", str(_free_port())] if args.whep else []
        live = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert live.stdout is not None
            first = json.loads(live.stdout.readline())  # the first status: on air for 1 s
            statuses: list[dict[str, Any]] = []
            threading.Thread(target=_read_status, args=(live, statuses), daemon=True).start()
            time.sleep(2)
            load = Path("/proc/loadavg").read_text().split()[:3]
            out = work / "profile.txt"
            spy = ["py-spy", "record", "--pid", str(live.pid), "--duration", str(args.seconds)]
            spy += ["--rate", "100", "--format", "raw", "--output", str(out), "--subprocesses"]
            spy += ["--native"] if args.native else []
            spy += ["--gil"] if args.gil else []
            cpu0, t0, stage0 = thread_cpu(live.pid), time.monotonic(), _stage(statuses)
            if args.no_spy:
                time.sleep(args.seconds)
            else:
                subprocess.run(spy, check=True, timeout=args.seconds + 60, capture_output=True)
            cpu1, wall, stage1 = thread_cpu(live.pid), time.monotonic() - t0, _stage(statuses)
            by_thread = {k: round((v - cpu0.get(k, 0.0)) / wall, 4) for k, v in cpu1.items()}
            media = (stage1[0] - stage0[0]) or 1.0
            by_stage = {
                k: round((v - stage0[1].get(k, 0.0)) / media, 4) for k, v in stage1[1].items()
            }
            total, own, incl = (1, collections.Counter(), collections.Counter())
            if not args.no_spy:
                total, own, incl = parse(out.read_text())
            load_end = Path("/proc/loadavg").read_text().split()[:3]
        finally:
            live.send_signal(signal.SIGTERM)
            try:
                live.wait(30)
            except subprocess.TimeoutExpired:
                live.kill()
                live.wait(10)
            server.stop()
        bare = bare_encode(work / "rec") if args.bare else None
    res = {
        "seconds": args.seconds,
        "rate_hz": 100,
        "samples": total,
        "busy_cores": round(total / 100 / args.seconds, 2),
        "load_1m_5m_15m": load,
        "load_at_end": load_end,
        "cpu_s_per_media_s": round(sum(by_thread.values()), 4),
        "bare_encode": bare,
        "ratio_to_bare_encode": (
            round(sum(by_thread.values()) / bare["cpu_s_per_media_s"], 2) if bare else None
        ),
        "state_at_start": first.get("state"),
        "cores_by_thread": dict(sorted(by_thread.items(), key=lambda kv: -kv[1])),
        "stages_in_encode_thread": by_stage,
        "top_own": [(f, n, round(n / total, 3)) for f, n in own.most_common(args.top)],
        "top_inclusive": [(f, n, round(n / total, 3)) for f, n in incl.most_common(args.top)],
    }
    print(json.dumps(res, indent=2))
    rows = ["| thread | CPU s per media s |", "|---|---|"]
    rows += [f"| {k} | {v:.4f} |" for k, v in res["cores_by_thread"].items()]
    rows += [f"| **total** | **{res['cpu_s_per_media_s']:.4f}** |", ""]
    if bare:
        ratio = res["ratio_to_bare_encode"]
        rows += [f"bare encode {bare['cpu_s_per_media_s']:.4f} CPU s/media s, ratio {ratio}", ""]
    rows += ["| stage (thread CPU, in the process's own count) | CPU s per media s |", "|---|---|"]
    rows += [f"| {k} | {v:.4f} |" for k, v in by_stage.items()]
    rows += [""]
    rows += ["| # | function (own samples) | share |", "|---|---|---|"]
    rows += [f"| {i} | `{f}` | {s:.1%} |" for i, (f, _, s) in enumerate(res["top_own"], 1)]
    print("\n".join(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
