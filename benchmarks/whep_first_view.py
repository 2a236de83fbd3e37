"""How soon a viewer of an idle stream sees video: offer to first decoded frame, over WHEP.

    python benchmarks/whep_first_view.py [--viewers 8]

A ``WhepProcess`` (the fan-out child every served stream has) fed by the synthetic 720p25
programme of ``tests/test_whep.py`` (keyframe every 2 s), idle for 3 s; then viewers one at a
time, each an aiortc client that decodes: the time from its offer to its first decoded video
frame, then it leaves, and the next comes after a pause that lands it at another point of the
GOP. With the feed gated on viewers (issue #18) the child gets no media while nobody watches;
run it with ``PYTHONPATH`` at an older tree's ``src`` for the baseline. JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from avatarcast.output.whep_process import WhepProcess  # noqa: E402
from test_whep import LiveSource, Viewer  # noqa: E402


async def run(viewers: int) -> dict[str, object]:
    whep = WhepProcess(port=0)
    await whep.start()
    source = LiveSource(whep)
    task = asyncio.create_task(source.run())
    firsts: list[float] = []
    try:
        await asyncio.sleep(3.0)
        idle_forwarded = getattr(whep, "forwarded", None)
        async with httpx.AsyncClient(base_url=str(whep.url)) as client:
            for i in range(viewers):
                viewer = Viewer()
                try:
                    t0 = time.monotonic()
                    response = await viewer.start(client, "/whep")
                    assert response.status_code == 201, response.text
                    await viewer.wait_for_video()
                    firsts.append(viewer.video_times[0] - t0)
                    await client.delete(viewer.location)
                finally:
                    await viewer.close()
                await asyncio.sleep(1.3 + 0.37 * i)  # another phase of the 2 s GOP each time
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await whep.aclose()
    return {
        "viewers": viewers,
        "first_frame_s": [round(f, 3) for f in firsts],
        "median_s": round(statistics.median(firsts), 3),
        "max_s": round(max(firsts), 3),
        "messages_to_child_while_idle": idle_forwarded,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", type=int, default=8)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args.viewers)), indent=1))


if __name__ == "__main__":
    main()
