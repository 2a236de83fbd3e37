"""Memory A/B of live streams side by side, each under its own allocator settings.

``python benchmarks/mem_ab.py --minutes 25 --out DIR base ARENA1:MALLOC_ARENA_MAX=1 ...``
starts one nginx-rtmp (tests/rtmp_server.py) and, at the same time, one CLI stream per variant
(720p25 demo programme, RTMP push + segmented MP4 recording, ``--duration``), each in
``benchmarks/mem_probe.py`` so the stream's own process is sampled from inside every 10 s.
A variant is ``NAME[:VAR=VALUE,VAR=VALUE]``: environment for that stream only (an allocator:
``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``, ``LD_PRELOAD``; or ``AVATARCAST_*`` settings).
``--nice`` lowers the streams (they share the machine with other work).

At the end, per variant, over the samples from ``--skip`` minutes on: least-squares slope of
the stream's process tree RSS, of its main process's anonymous memory and of glibc's in-use
and free bytes (MB/h), and CPU seconds per media second of the tree. ``summarize(DIR)`` redoes
the table from the files.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rtmp_server import RtmpServer  # noqa: E402


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    cov = sum((t - mt) * (v - mv) for t, v in points)
    return cov / var * 3600 if var else float("nan")


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by the stop
    return rows


def _frames(log: Path) -> str:
    """Frames and late frames from the stream's last status line (``--status-json``)."""
    last: dict[str, Any] = {}
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"late_frames"' in line:
                try:
                    last = json.loads(line)
                except json.JSONDecodeError:
                    continue
    return f"{last.get('frames', '?')} ({last.get('late_frames', '?')})"


def summarize(out: Path, skip_min: float = 8.0) -> str:
    lines = [
        f"samples from minute {skip_min:g} on; slopes in MB/h (least squares), levels in MB",
        "| variant | minutes | tree RSS first -> last | tree RSS slope | main anon slope "
        "| malloc in use slope | malloc free slope | mmapped slope | CPU s per media s "
        "| frames (late) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*.jsonl")):
        rows = [r for r in _rows(path) if r["t"] >= skip_min * 60]
        if len(rows) < 3:
            lines.append(f"| {path.stem} | too few samples ({len(rows)}) |")
            continue

        def s(get: Any, rows: list[dict[str, Any]] = rows) -> float:
            return slope_per_hour([(r["t"], get(r)) for r in rows])

        a, b = rows[0], rows[-1]
        cpu = (b["tree_cpu"] - a["tree_cpu"]) / (b["t"] - a["t"])
        mi = a.get("mi") or {}
        lines.append(
            f"| {path.stem} | {a['t'] / 60:.0f}-{b['t'] / 60:.0f} "
            f"| {a['tree_rss']:.0f} -> {b['tree_rss']:.0f} "
            f"| {s(lambda r: r['tree_rss']):.1f} | {s(lambda r: r['anon']):.1f} "
            + (
                f"| {s(lambda r: r['mi']['inuse']):.1f} | {s(lambda r: r['mi']['free']):.1f} "
                f"| {s(lambda r: r['mi']['mmap']):.1f} "
                if mi and mi.get("arena", 0) > 0
                else "| - | - | - "
            )
            + f"| {cpu:.3f} | {_frames(path.with_suffix('.log'))} "
            f"| {min(r['load'] for r in rows):.1f}-"
            f"{max(r['load'] for r in rows):.1f} |"
        )
    return "\n".join(lines)


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, envs = text.partition(":")
    env = {}
    for item in filter(None, envs.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"variant {text!r}: {item!r} is not VAR=VALUE")
        env[key] = value
    return name, env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", help="NAME[:VAR=VALUE,...]")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--skip", type=float, default=8.0, help="minutes left out of the slopes")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--tracemalloc", action="append", default=[], help="variant to trace")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rtmp = RtmpServer(args.out / "nginx")
    rtmp.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for text in args.variants:
            name, env = _variant(text)
            cmd = [
                "nice",
                "-n",
                str(args.nice),
                sys.executable,
                str(ROOT / "benchmarks" / "mem_probe.py"),
                "--out",
                str(args.out / f"{name}.jsonl"),
                "--every",
                str(args.every),
                *(["--tracemalloc"] if name in args.tracemalloc else []),
                "--",
                "live",
                "--catalog",
                str(ROOT / "configs" / "demo-catalog.json"),
                "--to",
                rtmp.url(name),
                "--record",
                str(args.out / f"{name}-rec"),
                "--duration",
                str(args.minutes * 60),
                "--status-json",
            ]
            log = (args.out / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
                )
            )
            log.close()
        deadline = time.monotonic() + args.minutes * 60 + 120
        for p in procs:
            try:
                p.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()  # the table is made from what it sampled so far
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        rtmp.stop()
    table = summarize(args.out, args.skip)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
