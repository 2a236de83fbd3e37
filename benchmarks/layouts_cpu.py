"""CPU per media second of one live stream in two layouts against the same stream in one.

    python benchmarks/layouts_cpu.py [--seconds 20] [--rounds 2] [--markdown FILE]

Starts a throwaway nginx-rtmp on loopback (tests/rtmp_server.py), then, alternately, ROUNDS
times each: ``avatarcast live`` pushing the 720p programme to one destination (one layout);
the same to two destinations in that one layout (what a second destination costs by itself:
its RTMP push process); and the same with the second destination taking ``720x1280/tiktok``
(two layouts: the same talk, voice and animation drawn twice and encoded twice).

CPU is the process tree's (the stream and its RTMP push children, from /proc) between the
first status line past 3 s of media and the last one, divided by the media seconds between
them, so start-up is left out. The floor of what a second layout can cost is measured in the
same run: x264 alone (the live ``Encoder``'s video part; the extra layout shares the main
one's AAC) at 720x1280 on composed portrait frames with a moving mouth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_profile import thread_cpu  # noqa: E402
from procstat import cpu_seconds, descendants_cpu, loadavg  # noqa: E402

from rtmp_server import RtmpServer  # noqa: E402

DEMO = ROOT / "configs" / "demo-catalog.json"


def _tree_cpu(pid: int) -> float:
    return cpu_seconds(pid) + sum(descendants_cpu(pid).values())


def run_stream(
    server: RtmpServer, *, layouts: int, dests: int, seconds: float, tag: str
) -> dict[str, Any]:
    """One ``avatarcast live`` process; CPU per media second over its steady part."""
    targets = ["--to", server.url(f"{tag}-wide")]
    if layouts == 2:
        targets += ["--to", f"720x1280/tiktok={server.url(f'{tag}-tall')}"]
    elif dests == 2:
        targets += ["--to", server.url(f"{tag}-wide2")]
    cmd = [sys.executable, "-m", "avatarcast.cli", "live", "--catalog", str(DEMO)]
    cmd += ["--lang", "en", "--duration", str(seconds), "--status-json", *targets]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    marks: list[tuple[float, float]] = []  # (media seconds, CPU seconds of the tree)
    stages: list[dict[str, float]] = []  # the process's own stage counters, first and last mark
    threads: list[dict[str, float]] = []  # CPU seconds by thread name at the first and last mark
    last: dict[str, Any] = {}
    for line in proc.stdout:
        try:
            status = json.loads(line)
        except ValueError:
            continue
        last = status
        media = float(status.get("media_time_s") or 0.0)
        if media >= 3.0 and status.get("state") == "live":
            try:
                marks.append((media, _tree_cpu(proc.pid)))
                now_threads = thread_cpu(proc.pid)
                now_stages = dict(status.get("stage_cpu_s") or {})
                threads[:] = [threads[0] if threads else now_threads, now_threads]
                stages[:] = [stages[0] if stages else now_stages, now_stages]
            except OSError:
                break
    proc.wait(timeout=60)
    if len(marks) < 2:
        raise RuntimeError(f"{tag}: too few status lines ({len(marks)}): {last}")
    (m0, c0), (m1, c1) = marks[0], marks[-1]
    by_thread = {
        k: round((v - threads[0].get(k, 0.0)) / (m1 - m0), 4) for k, v in threads[-1].items()
    }
    by_stage = {k: round((v - stages[0].get(k, 0.0)) / (m1 - m0), 4) for k, v in stages[-1].items()}
    return {
        "layouts": layouts,
        "destinations": dests,
        "media_s": round(m1 - m0, 2),
        "cpu_per_media_s": round((c1 - c0) / (m1 - m0), 4),
        "late_frames": last.get("late_frames"),
        "load": loadavg(),
        "by_stage": by_stage,
        "by_thread": {k: v for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1]) if v},
    }


def bare_encoder(seconds: float) -> float:
    """CPU seconds per media second of x264 in the live ``Encoder`` on 720x1280 frames."""
    import numpy as np

    from avatarcast.avatar.base import AvatarState
    from avatarcast.frames import ProgrammeFrame, StreamFormat
    from avatarcast.output.encoder import Encoder
    from avatarcast.pipeline.build import ProgrammeOptions, build, validate
    from avatarcast.yuv import YuvFrame

    opts = ProgrammeOptions(catalog_path=DEMO, lang="en", size="720x1280", preset="tiktok")
    built = build(validate(opts), live=False)
    fmt = StreamFormat(width=720, height=1280, fps=25)
    frames = []
    product = built.programme.current_product
    for i in range(50):  # the mouth moving, as in a stream
        f = YuvFrame(720, 1280)
        state = AvatarState(viseme="AA" if i % 4 < 2 else "rest", mouth_open=float(i % 4 < 2))
        built.compositor.compose(f, state=state, product=product, caption=None)
        frames.append(f.buf.copy())
    enc = Encoder(fmt)
    pcm = np.zeros(fmt.samples_per_frame, np.int16)
    n = round(seconds * 25)
    for i in range(n):
        enc.encode(ProgrammeFrame(pts=i, yuv=frames[i % 50], pcm=pcm))
    enc.flush()
    return enc.cpu_seconds["x264"] / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    server = RtmpServer(Path(f"/tmp/layouts-bench-{os.getpid()}"))
    server.start()
    runs: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for layouts, dests in ((1, 1), (1, 2), (2, 2)):
                run = run_stream(
                    server,
                    layouts=layouts,
                    dests=dests,
                    seconds=args.seconds,
                    tag=f"r{r}l{layouts}d{dests}",
                )
                print(json.dumps(run), file=sys.stderr)
                runs.append(run)
    finally:
        server.stop()
    one = statistics.median(
        x["cpu_per_media_s"] for x in runs if (x["layouts"], x["destinations"]) == (1, 1)
    )
    one2 = statistics.median(
        x["cpu_per_media_s"] for x in runs if (x["layouts"], x["destinations"]) == (1, 2)
    )
    two = statistics.median(x["cpu_per_media_s"] for x in runs if x["layouts"] == 2)
    encoder = bare_encoder(10.0)
    floor = (one + encoder) / one
    result = {
        "one_layout_cpu_per_media_s": round(one, 4),
        "two_layouts_cpu_per_media_s": round(two, 4),
        "one_layout_two_destinations_cpu_per_media_s": round(one2, 4),
        "ratio": round(two / one, 3),
        "ratio_same_destinations": round(two / one2, 3),
        "goal": 1.6,
        "x264_720x1280_cpu_per_media_s": round(encoder, 4),
        "floor_ratio": round(floor, 3),
        "runs": runs,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    table = (
        "| layouts | CPU s per media s | ratio | floor (one + x264 at 720x1280) |\n"
        "|---|---|---|---|\n"
        f"| 1 (720p), 1 destination | {one:.3f} | 1.00 | |\n"
        f"| 1 (720p), 2 destinations | {one2:.3f} | {one2 / one:.2f} | |\n"
        f"| 2 (720p + 720x1280/tiktok), 2 destinations | {two:.3f} | {two / one:.2f} "
        f"| {floor:.2f} |\n"
    )
    print(table, file=sys.stderr)
    if args.markdown is not None:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
