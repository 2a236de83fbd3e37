"""The on-air monitors' cost per stream: CPU s per media s, against the same stream unwatched.

Runs the demo programme twice on the simulated clock in one process (the frame loop, the
encoder and a null sink; the second time with the watch beside the sink) and prints the
process CPU per media second of each, the watch's own CPU (``OnAirWatch.cpu_s``: its ticks plus
the lip-sync windows' thread), and every finding (a clean run must have none). Goal: <= 0.01.

    PYTHONPATH=src .venv/bin/python benchmarks/monitors_cost.py --seconds 120
    PYTHONPATH=src .venv/bin/python benchmarks/monitors_cost.py --seconds 1800 --watched-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from avatarcast.pipeline.monitored import run_monitored
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.settings import MonitorSettings

CATALOG = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--watched-only", action="store_true", help="skip the unwatched run")
    args = ap.parse_args()
    opts = ProgrammeOptions(catalog_path=CATALOG, lang="en")
    out: dict[str, object] = {"media_s": args.seconds}
    if not args.watched_only:
        bare = await run_monitored(opts, seconds=args.seconds, monitors=None)
        out["unwatched_cpu_per_media_s"] = round(bare.cpu_s / bare.media_s, 4)
    watched = await run_monitored(opts, seconds=args.seconds, monitors=MonitorSettings())
    out["watched_cpu_per_media_s"] = round(watched.cpu_s / watched.media_s, 4)
    out["monitor_cpu_per_media_s"] = round(watched.monitor_cpu_s / watched.media_s, 5)
    if "unwatched_cpu_per_media_s" in out:
        ratio = watched.monitor_cpu_s / watched.media_s / float(out["unwatched_cpu_per_media_s"])  # type: ignore[arg-type]
        out["monitor_share_of_stream"] = round(ratio, 4)
    out["wall_s"] = round(watched.wall_s, 1)
    out["findings"] = watched.kinds("glitch")
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 1 if out["findings"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
