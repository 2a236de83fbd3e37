"""Where a twin frame's CPU goes: cProfile over an offline render, every thread profiled.

``render_file`` runs the live pipeline on a simulated clock (frames as fast as they can be
made): the event loop plans, executor threads compose, and the encoder runs in a child
process (``ProcessEncoder``). Each Python thread gets its own ``cProfile.Profile`` (a
``threading.setprofile`` hook starts one in every thread on its first event); their stats are
merged, and the encoder child's CPU comes from ``RUSAGE_CHILDREN``. The same render with the
drawn presenter, in the same run, is the ratio's baseline.

    AVATARCAST_ASSETS=DIR python benchmarks/twin_profile.py [--avatar benchtwin] [--seconds 20]

DIR holds the twin pack (``twin_bench.py --parts prepare --work W`` makes ``W/avatars``) and
the drawn ``daan``. Prints, per presenter: CPU s per media s (this process, the encoder child)
and the top functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "configs" / "demo-catalog.json"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class ThreadProfiles:
    """One ``cProfile.Profile`` per thread started while this is installed (and the caller's)."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        prof = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(prof)
        prof.enable()  # replaces this hook in this thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._hook)
        main = cProfile.Profile(time.thread_time)
        self.profiles.append(main)
        main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        for p in self.profiles:
            p.disable()

    def stats(self) -> pstats.Stats:
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for p in self.profiles[1:]:
            p.create_stats()
            if getattr(p, "stats", None):
                stats.add(p)
        return stats


def profile_render(avatar: str, seconds: float, top: int) -> dict[str, Any]:
    from avatarcast.pipeline.render import render_file
    from avatarcast.pipeline.spec import ProgrammeOptions

    opts = ProgrammeOptions(catalog_path=CATALOG, lang="en", avatar=avatar, seed=3)
    c0, k0, w0 = time.process_time(), _children_cpu(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twin-profile-") as tmp, ThreadProfiles() as tp:
        result = asyncio.run(render_file(opts, out=Path(tmp) / f"{avatar}.mp4", duration=seconds))
    cpu, child, wall = time.process_time() - c0, _children_cpu() - k0, time.perf_counter() - w0
    text = io.StringIO()
    stats = tp.stats()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    media = result.frames / 25
    return {
        "avatar": avatar,
        "frames": result.frames,
        "wall_s": round(wall, 2),
        "cpu_per_media_s": round(cpu / media, 4),
        "encoder_child_cpu_per_media_s": round(child / media, 4),
        "ms_per_frame_this_process": round(1000 * cpu / result.frames, 2),
        "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
        "threads_profiled": len(tp.profiles),
        "top": text.getvalue(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--avatar", default="benchtwin")
    ap.add_argument("--baseline", default="daan")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    load = os.getloadavg()
    rows = [profile_render(a, args.seconds, args.top) for a in (args.avatar, args.baseline)]
    for r in rows:
        sys.stdout.write(r.pop("top") + "\n")
    for r in rows:
        sys.stdout.write(f"{r}\n")
    twin, drawn = rows
    ratio = twin["cpu_per_media_s"] / max(drawn["cpu_per_media_s"], 1e-9)
    sys.stdout.write(
        f"ratio twin/drawn (this process) {ratio:.2f}; load {load[0]:.2f} -> "
        f"{os.getloadavg()[0]:.2f}\n"
    )


if __name__ == "__main__":
    main()
