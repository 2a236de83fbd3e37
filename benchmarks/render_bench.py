"""Offline render speed against the raw encoder, measured on the same frames in the same run.

    python benchmarks/render_bench.py [--seconds 60] [--lang nl]

1. Renders SECONDS of the demo catalog through the whole pipeline (talk, voice, animator,
   compositor, encoder, MP4 sink) on a simulated clock, recording the time spent per stage.
2. Encodes the very same composed frames again with nothing else running (the raw libx264 +
   AAC encode, same settings) and reports the ratio of the two speeds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from avatarcast.frames import ProgrammeFrame
from avatarcast.output.encoder import Encoder
from avatarcast.pipeline.build import build, validate
from avatarcast.pipeline.render import deterministic_encoder, render_built
from avatarcast.pipeline.spec import ProgrammeOptions

ROOT = Path(__file__).resolve().parents[1]


async def main(seconds: float, lang: str) -> dict[str, object]:
    resolved = validate(
        ProgrammeOptions(catalog_path=ROOT / "configs/demo-catalog.json", lang=lang)
    )
    fmt = resolved.fmt
    frames_n = round(seconds * fmt.fps)
    built = build(resolved, live=False, encoder=deterministic_encoder(fmt))
    kept: list[ProgrammeFrame] = []
    encode = built.encoder.encode

    def keep(frame: ProgrammeFrame) -> list[object]:
        kept.append(ProgrammeFrame(pts=frame.pts, yuv=frame.yuv.copy(), pcm=frame.pcm.copy()))
        return encode(frame)  # type: ignore[return-value]

    built.encoder.encode = keep  # type: ignore[method-assign]
    # one-time start-up (loading espeak-ng, importing scipy) is not throughput: pay it first
    from avatarcast.frames import Sentence

    await built.voice.synthesize(Sentence(text="Hallo.", lang=lang, source="filler"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = await render_built(
            built, out=Path(tmp) / "bench.mp4", frames=frames_n, transcript=None, progress=False
        )
        wall = time.perf_counter() - t0
    copy_cost = 0.0  # the copy above is charged to the encode stage; measure it to subtract
    t1 = time.perf_counter()
    for f in kept[:100]:
        _ = f.yuv.copy()
    copy_cost = (time.perf_counter() - t1) / 100 * frames_n
    raw = Encoder(fmt, threads=1)
    t2 = time.perf_counter()
    for f in kept:
        raw.encode(f)
    raw.flush()
    raw_wall = time.perf_counter() - t2
    pipeline_fps = frames_n / max(wall - copy_cost, 1e-9)
    raw_fps = frames_n / raw_wall
    stages = {k: round(v / frames_n * 1000, 3) for k, v in result.stage_seconds.items()}
    stages["encode"] = round((result.stage_seconds["encode"] - copy_cost) / frames_n * 1000, 3)
    return {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "cores": len(__import__("os").sched_getaffinity(0)),
        "seconds_of_programme": seconds,
        "frames": frames_n,
        "pipeline_fps": round(pipeline_fps, 1),
        "raw_encoder_fps": round(raw_fps, 1),
        "ratio_to_raw_encoder": round(pipeline_fps / raw_fps, 3),
        "ms_per_frame_by_stage": stages,
        "sentences": result.sentences,
        "mean_frame_bytes": int(np.mean([f.yuv.nbytes for f in kept[:10]])),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--lang", default="nl")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main(args.seconds, args.lang)), indent=2))
