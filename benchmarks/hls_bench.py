"""HLS: the sink's extra CPU per stream, and glass-to-glass latency of HLS and LL-HLS in Chromium.

CPU: 60 s of 720p25 programme is encoded once (the one encode every sink shares), then the same
packets are fed as fast as possible to a ``NullSink`` (the baseline: the loop and the hand-off)
and to the HLS sink, plain and low-latency, writing real files. The extra CPU of a sink is its
process CPU (every thread) minus the baseline's, per second of media; the encode's own CPU for
the same media is the ratio's reference. Best of ``--repeat`` runs.

Latency: ``avatarcast serve`` runs a real stream with HLS, then with LL-HLS; headless Chromium
plays the embed page and samples ``now - hls.playingDate`` (the frame's wall time from
``EXT-X-PROGRAM-DATE-TIME``) every 0.5 s. The stream's own lateness (``encode_lag_ms``) is
recorded beside it: on an overloaded machine the programme itself runs late, and that is not
HLS's doing.

    PYTHONPATH=src .venv/bin/python benchmarks/hls_bench.py [--cpu-only] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from procstat import loadavg  # noqa: E402

from avatarcast.frames import EncodedPacket, StreamFormat  # noqa: E402
from avatarcast.output.base import Sink, StreamHeaders  # noqa: E402
from avatarcast.output.encoder import Encoder  # noqa: E402
from avatarcast.output.hls import HlsOptions, HlsSink  # noqa: E402
from avatarcast.output.mp4 import NullSink  # noqa: E402
from synthetic_programme import frames  # noqa: E402

FMT = StreamFormat(width=1280, height=720, fps=25, metadata={"ai_label": "AI-generated"})


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def encode(seconds: float) -> tuple[StreamHeaders, list[list[EncodedPacket]], float, int]:
    enc = Encoder(FMT)
    batches: list[list[EncodedPacket]] = []
    c0 = time.process_time()
    for frame in frames(FMT, seconds):
        batches.append(enc.encode(frame))
    batches.append(enc.flush())
    cpu = enc.cpu_seconds["x264"] + enc.cpu_seconds["aac"]
    size = sum(len(p.data) for b in batches for p in b)
    took = time.process_time() - c0
    log(f"encoded {seconds} s in {took:.1f} CPU s, {size * 8 / seconds / 1e6:.2f} Mbit/s")
    return enc.headers, batches, cpu, size


async def feed(sink: Sink, headers: StreamHeaders, batches: list[list[EncodedPacket]]) -> float:
    c0 = time.process_time()
    await sink.open(headers)
    write_batch = getattr(sink, "write_batch", None)
    for batch in batches:
        if write_batch is not None:
            await write_batch(batch)
        else:
            for p in batch:
                await sink.write(p)
    await sink.aclose()
    return time.process_time() - c0


def cpu_bench(seconds: float, repeat: int) -> dict[str, Any]:
    headers, batches, encode_cpu, size = encode(seconds)
    results: dict[str, float] = {}
    for name in ("null", "hls", "ll-hls", "null"):
        best = float("inf")
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                sink: Sink
                if name == "null":
                    sink = NullSink()
                else:
                    sink = HlsSink(
                        Path(tmp) / "hls",
                        options=HlsOptions(low_latency=name == "ll-hls"),
                        metadata=FMT.metadata,
                    )
                best = min(best, asyncio.run(feed(sink, headers, batches)))
        results[name] = min(best, results.get(name, best))
        log(f"{name}: {best:.3f} CPU s for {seconds} s of media")
    extra = {k: (v - results["null"]) / seconds for k, v in results.items() if k != "null"}
    return {
        "media_s": seconds,
        "mbit_s": round(size * 8 / seconds / 1e6, 2),
        "baseline_null_cpu_s_per_media_s": round(results["null"] / seconds, 5),
        "encode_cpu_s_per_media_s": round(encode_cpu / seconds, 4),
        "extra_cpu_s_per_media_s": {k: round(v, 5) for k, v in extra.items()},
        "ratio_to_encode": {k: round(v / (encode_cpu / seconds), 4) for k, v in extra.items()},
        "goal_cpu_s_per_media_s": 0.005,
    }


SOURCE = StreamFormat(width=640, height=360, fps=25, metadata={"ai_label": "AI-generated"})


async def paced_source(folder: Path, ll: bool, stop: asyncio.Event) -> None:
    """A 640x360 test pattern encoded on the wall clock into an HLS sink: HLS's own latency,
    without the programme's (which runs late on an overloaded machine)."""
    enc = Encoder(SOURCE)
    sink = HlsSink(folder, options=HlsOptions(low_latency=ll), metadata=SOURCE.metadata)
    await sink.open(enc.headers)
    t0 = time.monotonic()
    for frame in frames(SOURCE, 3600):
        if stop.is_set():
            break
        await asyncio.sleep(max(0.0, t0 + frame.pts / SOURCE.fps - time.monotonic()))
        await sink.write_batch(await asyncio.to_thread(enc.encode, frame))
    await sink.write_batch(enc.flush())
    await sink.aclose()


async def watch(embed: str, seconds: float, lag: Any, shot: Path | None) -> dict[str, Any]:
    """Chromium on ``embed``: latency samples after a 4 s settle, and what ``lag()`` says."""
    from playwright.async_api import async_playwright

    from served import CHROMIUM, CHROMIUM_ARGS, PAGE_STATE

    lat, lags = [], []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="hls-bench-"), executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        page = await browser.new_page()
        await page.goto(embed, wait_until="domcontentloaded")
        await page.wait_for_function(
            "document.getElementById('video').currentTime > 0.5", timeout=90_000
        )
        await asyncio.sleep(4.0)  # past the start-up catch-up
        first = await page.evaluate(PAGE_STATE)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            state = await page.evaluate(PAGE_STATE)
            if state["latency"] is not None:
                lat.append(state["latency"])
            lags.append(await lag())
            await asyncio.sleep(0.5)
        last = await page.evaluate(PAGE_STATE)
        if shot is not None:
            await page.screenshot(path=str(shot))
        await browser.close()
    return {
        "latency_median_s": round(statistics.median(lat), 2),
        "latency_p90_s": round(sorted(lat)[int(0.9 * (len(lat) - 1))], 2),
        "source_lateness_median_s": round(statistics.median(lags), 2),
        "played_per_wall_s": round((last["t"] - first["t"]) / seconds, 2),
        "stalls": sum(1 for e in last["errors"] if "Stalled" in e),
    }


#: (name, the stream's low_latency, the page plays parts)
SOURCE_MODES = (
    ("hls", False, False),
    ("ll-hls", True, True),
    ("ll-hls-playlist-as-segments", True, False),
)


async def source_latency(server: Any, seconds: float) -> dict[str, Any]:
    from served import hls_stream

    out: dict[str, Any] = {}
    for mode, ll, parts in SOURCE_MODES:
        stream = await asyncio.to_thread(
            hls_stream, server, f"source-{mode}", {"low_latency": ll, "public": True}
        )
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(paced_source(stream["folder"], ll, stop))
            for _ in range(300):  # the first segment, 2 s of paced source
                if (stream["folder"] / "index.m3u8").exists():
                    break
                await asyncio.sleep(0.2)

            async def no_lag() -> float:
                return 0.0

            try:
                out[mode] = await watch(_embed(stream, parts), seconds, no_lag, None)
            finally:
                stop.set()
        log(f"source {mode}: {out[mode]}")
    return out


async def latency_bench(seconds: float, shot: Path | None, programme: bool) -> dict[str, Any]:
    from served import live_hls_stream, serve, stop_stream

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        # started and stopped off the event loop: both wait for the process
        server = await asyncio.to_thread(stack.enter_context, serve(Path(tmp)))
        try:
            out["source"] = await source_latency(server, seconds)
            if not programme:
                return out
            out["programme"] = {}
            for mode, ll in (("hls", False), ("ll-hls", True)):
                stream = await asyncio.to_thread(
                    live_hls_stream, server, mode, {"low_latency": ll, "public": True}
                )
                client = server.client("operator")

                async def lag(c: Any = client, sid: str = stream["id"]) -> float:
                    status = await asyncio.to_thread(_status, c, sid)
                    return float(status["encode_lag_ms"] or 0) / 1000

                try:
                    out["programme"][mode] = await watch(
                        _embed(stream, ll), seconds, lag, shot if ll else None
                    )
                finally:
                    client.close()
                    await asyncio.to_thread(stop_stream, server, stream["id"])
                log(f"programme {mode}: {out['programme'][mode]}")
                await asyncio.sleep(3.0)
        finally:
            await asyncio.to_thread(stack.close)
    return out


def _embed(stream: dict[str, Any], ll: bool) -> str:
    """The embed page; ``?ll=1`` makes it play the LL-HLS parts (off by default)."""
    url: str = stream["embed"]
    return url + ("&" if "?" in url else "?") + "ll=1" if ll else url


def _status(client: Any, stream_id: str) -> dict[str, Any]:
    status: dict[str, Any] = client.get(f"/v1/streams/{stream_id}").json()["status"]
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="media seconds for CPU")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--watch", type=float, default=20.0, help="seconds Chromium samples")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--no-cpu", action="store_true")
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument(
        "--no-programme", action="store_true", help="latency of the paced source only"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": loadavg()},
    }
    if not args.no_cpu:
        report["cpu"] = cpu_bench(args.seconds, args.repeat)
    if not args.cpu_only:
        report["latency"] = asyncio.run(
            latency_bench(args.watch, args.screenshot, not args.no_programme)
        )
    report["machine"]["loadavg_end"] = loadavg()
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
