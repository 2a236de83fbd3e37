"""One part of a live stream at a time, for many media minutes, to see which part keeps memory.

``python benchmarks/mem_parts.py PART --minutes M`` builds the demo programme (720p25), encodes
its first 10 s once, and then drives one part in this process, printing anonymous memory
(after ``gc.collect`` and ``malloc_trim``) and glibc's in-use bytes every few media minutes:

- ``rec``: the segmented MP4 recorder, fed the 10 s of packets again and again with their
  timestamps moved on (no encode: ~20x faster than real time);
- ``dec``: the monitors' output decoder (every AAC packet, the H.264 keyframes) and a lip-sync
  window decode every minute;
- ``enc``: plan, compose (one frame a second) and encode (x264 + AAC, every frame) on the
  simulated clock: the frame loop's own work without sinks (about real time on a loaded core);
- ``loop``: the real frame loop (compose every frame and encode in its worker thread) into
  the segmented recorder (its own thread) and the on-air watch (lip-sync windows in a thread),
  on the simulated clock: the threads' hand-offs of a live stream without the wall clock
  (``--rtmp``: and the RTMP push to a loopback nginx-rtmp, which runs about as fast as live on
  a loaded machine);
- ``voice``: espeak synthesis of one sentence again and again (glibc in-use bytes per
  sentence: what the C library keeps).

A live stream is all of them at once plus the RTMP push and the wall clock; a part that grows
here grows there. ``--trace`` prints the 10 biggest Python growths (tracemalloc) of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from mem_probe import mallinfo  # noqa: E402

from avatarcast.frames import EncodedPacket, ProgrammeFrame, Sentence  # noqa: E402
from avatarcast.pipeline.build import Built, ProgrammeOptions, build, validate  # noqa: E402
from avatarcast.threads import fix_mmap_threshold, trim_heap  # noqa: E402
from avatarcast.yuv import YuvFrame  # noqa: E402

Batch = list[EncodedPacket]


def _anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mark(tag: str, caches: float | None = None) -> None:
    gc.collect()
    trim_heap()
    inuse = mallinfo().get("inuse", float("nan"))
    held = f"  compositor caches {caches:5.1f} MB" if caches is not None else ""
    print(
        f"{tag:24s} anon {_anon_mb():7.1f} MB  malloc in use {inuse:7.1f} MB  "
        f"python blocks {sys.getallocatedblocks()}{held}",
        flush=True,
    )


def cache_mb(comp: Any) -> float:
    """What a compositor's caches hold (as tests/test_memory_levels.py counts them)."""
    layers = comp._layers
    if layers is None:
        return 0.0
    plates = sum(p.sprite.y.size * 11 // 4 for p in comp._captions.values())
    blends = sum(b.pre_y.size * 11 for b in comp._blends.values())
    cards = sum(c.sprite.y.size * 11 // 4 for c in comp._cards.values())
    return float(layers.tile_bytes + plates + blends + cards) / 2**20


async def encode(built: Built, first: int, n: int, *, compose_every: int = 1) -> list[Batch]:
    fmt = built.fmt
    ring = [YuvFrame(fmt.width, fmt.height) for _ in range(3)]
    out = []
    for pts in range(first, first + n):
        plan = await built.programme.plan(pts)
        buf = ring[pts % 3]
        if (pts - first) % compose_every == 0:
            built.compositor(plan, buf)
        frame = ProgrammeFrame(
            pts=plan.pts,
            yuv=buf.buf,
            pcm=plan.pcm,
            mouth_open=plan.state.mouth_open,
            sentence=plan.sentence,
            product_id=None,
        )
        out.append(built.encoder.encode(frame))
    return out


def moved(batch: Sequence[EncodedPacket], seconds: int) -> Batch:
    """``batch`` ``seconds`` later."""
    out = []
    for p in batch:
        shift = round(seconds / p.time_base)
        out.append(dataclasses.replace(p, pts=p.pts + shift, dts=p.dts + shift))
    return out


async def run_rec(built: Built, batches: list[Batch], reps: int) -> None:
    from avatarcast.output.recording import SegmentedRecorder

    with tempfile.TemporaryDirectory(prefix="mem-parts-") as tmp:
        sink = SegmentedRecorder(tmp, segment_seconds=600)
        await sink.open(built.encoder.headers)
        for r in range(reps):
            for b in batches:
                await sink.write_batch(moved(b, 10 * r))
            if r % 30 == 29:
                mark(f"rec {(r + 1) / 6:.0f} min")
        await sink.aclose()


def run_dec(built: Built, batches: list[Batch], reps: int) -> None:
    from avatarcast.monitor.signals import OutputDecoder

    headers = built.encoder.headers
    dec = OutputDecoder(
        video_extradata=headers.video_extradata, audio_extradata=headers.audio_extradata
    )
    window = dec.window_decoder()
    video = [p for b in batches[:200] for p in b if p.kind == "video"]
    box = (560, 280, 720, 440)
    for r in range(reps):
        for b in batches:
            packets = moved(b, 10 * r)
            dec.audio([p for p in packets if p.kind == "audio"])
            for p in packets:
                dec.keyframe(p)
        if r % 6 == 0:
            window.mouth_series(video, box)
        if r % 30 == 29:
            mark(f"dec {(r + 1) / 6:.0f} min")


async def run_enc(built: Built, first: int, minutes: int) -> None:
    per_min = 60 * built.fmt.fps
    for m in range(minutes):
        await encode(built, first + m * per_min, per_min, compose_every=built.fmt.fps)
        mark(f"enc {m + 1} min")


class _Marker:
    """A sink that reports memory every media minute (counting video packets)."""

    def __init__(self, fps: int, compositor: Any) -> None:
        self.name, self._per_min, self._frames = "marker", 60 * fps, 0
        self._compositor = compositor

    async def open(self, headers: object) -> None:
        return None

    async def write(self, packet: EncodedPacket) -> None:
        await self.write_batch((packet,))

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        for p in packets:
            if p.kind == "video":
                self._frames += 1
                if self._frames % self._per_min == 0:
                    n = self._frames // self._per_min
                    mark(f"loop {n} min", cache_mb(self._compositor))

    async def aclose(self) -> None:
        return None


async def run_loop(built: Built, minutes: int, *, rtmp: bool) -> None:
    from avatarcast.clock import SimulatedClock
    from avatarcast.monitor.watch import OnAirWatch
    from avatarcast.output.recording import SegmentedRecorder
    from avatarcast.pipeline.frame_loop import FrameLoop
    from avatarcast.settings import MonitorSettings

    fmt = built.fmt
    watch = OnAirWatch(
        MonitorSettings(),
        fps=fmt.fps,
        sample_rate=fmt.sample_rate,
        state=built.programme,
        emit=lambda event: None,
        wall_clock=False,
        mouth_box=built.renderer.mouth_box(),
    )
    with tempfile.TemporaryDirectory(prefix="mem-parts-") as tmp:
        sinks: list[object] = [SegmentedRecorder(tmp, segment_seconds=600), watch]
        server = None
        if rtmp:  # the push to a loopback nginx-rtmp, in its child process, as live
            from tests.rtmp_server import RtmpServer

            from avatarcast.output.rtmp import RtmpSink

            server = RtmpServer(Path(tmp) / "nginx")
            server.start()
            sinks.append(RtmpSink(server.url("parts")))
        sinks.append(_Marker(fmt.fps, built.compositor))
        loop = FrameLoop(
            programme=built.programme,
            compose=built.compositor,
            encoder=built.encoder,
            sinks=sinks,  # type: ignore[arg-type]
            clock=SimulatedClock(),
        )
        try:
            await loop.run(frames=minutes * 60 * fmt.fps)
            await loop.close_sinks()
        finally:
            if server is not None:
                server.stop()


def run_voice(n: int) -> None:
    from avatarcast.voice.espeak import EspeakVoice

    voice = EspeakVoice("espeak-en-m")
    step = max(n // 4, 1)
    start = mallinfo().get("inuse", 0.0)
    for i in range(n + 1):
        text = f"The blue kettle number {i} costs twenty nine dollars."
        voice.synthesize_blocking(Sentence(text=text, lang="en", source="rundown"))
        if i % step == 0:
            mark(f"voice {i} sentences")
    grown = (mallinfo().get("inuse", 0.0) - start) * 1024
    print(f"glibc in use: +{grown / n:.2f} KB a sentence")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=("rec", "dec", "enc", "loop", "voice"))
    ap.add_argument("--minutes", type=int, default=30, help="media minutes (voice: sentences/10)")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--rtmp", action="store_true", help="loop: also push to a local nginx-rtmp")
    args = ap.parse_args()
    fix_mmap_threshold()  # as a stream worker does
    if args.trace:
        tracemalloc.start(4)
    t0 = time.perf_counter()
    if args.part == "voice":
        run_voice(args.minutes * 10)
        return
    opts = ProgrammeOptions(catalog_path=ROOT / "configs" / "demo-catalog.json", lang="en")
    built = build(validate(opts), live=False)
    if args.part == "loop":  # a fresh encoder: the loop's pts start at 0
        mark("built")
        await run_loop(built, args.minutes, rtmp=args.rtmp)
        return
    first = 10 * built.fmt.fps
    batches = await encode(built, 0, first)
    mark("10 s encoded")
    snap = tracemalloc.take_snapshot() if args.trace else None
    if args.part == "rec":
        await run_rec(built, batches, args.minutes * 6)
    elif args.part == "dec":
        run_dec(built, batches, args.minutes * 6)
    else:
        await run_enc(built, first, args.minutes)
    # the programme stays open: closing it fails the voice prefetch it has in flight
    print(f"{time.perf_counter() - t0:.0f} s wall")
    if snap is not None:
        for stat in tracemalloc.take_snapshot().compare_to(snap, "lineno")[:10]:
            print(stat)


if __name__ == "__main__":
    asyncio.run(main())
