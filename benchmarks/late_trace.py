"""Where late frames fall, from the frame trace of many live streams (``AVATARCAST_FRAME_TRACE``).

    AVATARCAST_FRAME_TRACE=DIR python benchmarks/twin_streams.py ...
    python benchmarks/late_trace.py DIR [--skip 5]

Each stream's process wrote ``DIR/<pid>.tsv`` (``avatarcast.trace``). Over the time every stream
was live (less the first SKIP seconds), per stream: frames, late frames (woken more than a frame
period after their time, as the stream's own counter counts them), runs of late frames, the
median and p99 wall time of compose and encode, keyframe phase (pts mod 50). Then, for the
late frames against all frames: how often the stream's own voice synthesis, or another
stream's, was running from 0.1 s before the frame was due to when it woke, and how many late
frames had another stream late within 0.15 s (stalls that spread). JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PERIOD = 0.04  # 25 fps


@dataclass
class Stream:
    wake: list[tuple[float, int, float]] = field(default_factory=list)  # t, pts, lateness
    jobs: list[tuple[int, float, float, float, bool]] = field(default_factory=list)
    voice: list[tuple[float, float]] = field(default_factory=list)  # start, end


def load(folder: Path) -> dict[str, Stream]:
    out: dict[str, Stream] = {}
    for path in sorted(folder.glob("*.tsv")):
        s = Stream()
        for line in path.read_text(encoding="utf-8").splitlines():
            f = line.split("\t")
            if f[1] == "wake":
                s.wake.append((float(f[0]), int(f[2]), float(f[3])))
            elif f[1] == "job":
                s.jobs.append((int(f[2]), float(f[3]), float(f[4]), float(f[5]), f[6] == "1"))
            elif f[1] == "bg" and f[2].endswith("synthesize_blocking"):
                s.voice.append((float(f[3]), float(f[3]) + float(f[4])))
        if s.wake:
            out[path.stem] = s
    return out


def _busy(spans: list[tuple[float, float]], a: float, b: float) -> bool:
    return any(x <= b and y >= a for x, y in spans)


def _p99(xs: list[float]) -> float:
    return sorted(xs)[int(0.99 * (len(xs) - 1))] if xs else 0.0


def analyse(streams: dict[str, Stream], skip: float) -> dict[str, Any]:
    lo = max(s.wake[0][0] for s in streams.values()) + skip
    hi = min(s.wake[-1][0] for s in streams.values())
    per: dict[str, Any] = {}
    late_at: list[tuple[float, str, bool, bool]] = []  # t, stream, own voice, other voice
    frames = own_all = other_all = 0
    for pid, s in streams.items():
        others = [v for q, o in streams.items() if q != pid for v in o.voice]
        woken = [w for w in s.wake if lo <= w[0] <= hi]
        late = [w for w in woken if w[2] > PERIOD]
        runs = sum(1 for i, w in enumerate(late) if i == 0 or w[1] - late[i - 1][1] > 2)
        jobs = [j for j in s.jobs if lo <= j[1] <= hi]
        for t, _pts, lateness in woken:
            own = _busy(s.voice, t - lateness - 0.1, t)
            other = _busy(others, t - lateness - 0.1, t)
            frames += 1
            own_all += own
            other_all += other
            if lateness > PERIOD:
                late_at.append((t, pid, own, other))
        per[pid] = {
            "frames": len(woken),
            "late": len(late),
            "late_runs": runs,
            "max_late_s": round(max((w[2] for w in woken), default=0.0), 3),
            "compose_ms_median_p99": [
                round(statistics.median(j[2] for j in jobs) * 1e3, 1),
                round(_p99([j[2] for j in jobs]) * 1e3, 1),
            ],
            "encode_ms_median_p99": [
                round(statistics.median(j[3] for j in jobs) * 1e3, 1),
                round(_p99([j[3] for j in jobs]) * 1e3, 1),
            ],
            "keyframe_pts_mod_50": sorted({j[0] % 50 for j in s.jobs if j[4]}),
            "voice_jobs": sum(1 for v in s.voice if lo <= v[0] <= hi),
        }
    n_late = len(late_at)
    spread = sum(
        1 for t, p, own, _ in late_at if any(q != p and abs(u - t) < 0.15 for u, q, *_ in late_at)
    )
    return {
        "window_s": round(hi - lo, 1),
        "streams": per,
        "late_frames": n_late,
        "share_own_voice_running": {
            "late": round(sum(x[2] for x in late_at) / n_late, 3) if n_late else None,
            "all": round(own_all / frames, 3) if frames else None,
        },
        "share_other_voice_running": {
            "late": round(sum(x[3] for x in late_at) / n_late, 3) if n_late else None,
            "all": round(other_all / frames, 3) if frames else None,
        },
        "late_with_another_stream_late_within_0_15_s": spread,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--skip", type=float, default=5.0, help="seconds after the last start")
    args = ap.parse_args()
    print(json.dumps(analyse(load(args.folder), args.skip), indent=1))


if __name__ == "__main__":
    main()
