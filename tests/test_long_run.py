"""Media time far into a 24/7 run, without running for days: the clock starts at an offset
just before each limit (``live --start-at``) and what went out is read back through a real
nginx-rtmp (ffprobe of the live stream) and from the recording (ffprobe of the segment).

The limits: 2^32 audio samples at 48 kHz (24.86 h, past a day), FFmpeg's FLV timestamps of
31 bits of milliseconds (24.86 days) and FLV/RTMP's 32 bits (49.7 days). The recording
rebases each segment to 0 (mp4 32-bit durations never see the programme time); the RTMP push
sends programme time while it fits, counts from the connection after that, and renews a
connection before its timestamps would wrap.
Measured before the fix: a stream started at 49.7 days read back at 24.85 days (the 31-bit
wrap), and one started just below 24.86 days would jump back to 0 on air.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avatarcast.frames import StreamFormat
from avatarcast.output._rtmp_push import MAX_CONNECTION_S
from avatarcast.output.encoder import Encoder
from avatarcast.output.rtmp import RtmpSink
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.pipeline.spec import ProgrammeOptions
from conftest_rtmp import rtmp_server  # noqa: F401
from rtmp_server import RtmpServer
from synthetic_programme import frames

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "demo-catalog.json"
SECONDS = 6  # on air; the read-back takes READ_S of it
READ_S = 4
LIMITS = {
    "audio-2^32-samples-24.86h": 2**32 / 48000,
    "flv-2^31-ms-24.86d": 2**31 / 1000,
    "flv-2^32-ms-49.7d": 2**32 / 1000,
}


def _packets(url: str, seconds: float) -> list[dict[str, Any]]:
    """The packets a viewer of ``url`` receives in ``seconds`` of media (retried until it
    plays). Counted in packets (25 video and 46.9 audio a second), not read to a timestamp: a
    renewal puts the timestamps back to 1 s, and a read that met one before its end went on
    until the stream ended (60 s at load 3-4)."""
    count = round(seconds * (25 + 48000 / 1024))
    deadline = time.monotonic() + 90
    while True:
        done = subprocess.run(
            [
                "ffprobe", "-v", "error", "-rw_timeout", "5000000",
                "-show_entries", "packet=codec_type,pts",
                "-read_intervals", f"%+#{count}", "-of", "json", url,
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        packets: list[dict[str, Any]] = json.loads(done.stdout or "{}").get("packets", [])
        if sum(p["codec_type"] == "video" for p in packets) > 25:
            return packets
        assert time.monotonic() < deadline, done.stderr[-500:]
        time.sleep(0.5)


def _steady(pts: list[int], step: float) -> None:
    """Rising by ``step`` ms (+-1 for rounding), never jumping back or ahead."""
    deltas = [b - a for a, b in itertools.pairwise(pts)]
    assert all(abs(d - step) <= 1.5 for d in deltas), sorted(set(deltas))


def _check_the_recording(record: Path, start_at: float) -> None:
    """One segment, rebased to 0, with every frame and the audio of the whole run."""
    index = json.loads((record / "index.json").read_text())
    (segment,) = index["segments"]
    assert abs(segment["start"] - start_at) < 0.05 and segment["frames"] == SECONDS * 25
    probe = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-show_entries",
            "stream=codec_type,nb_read_frames,start_time,duration", "-of", "json",
            str(record / segment["file"]),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert int(streams["video"]["nb_read_frames"]) == SECONDS * 25
    assert float(streams["video"]["start_time"]) == 0.0
    assert abs(float(streams["audio"]["duration"]) - SECONDS) < 0.1


#: the one limit run through ``avatarcast live --start-at`` (the CLI's wiring of the offset);
#: the other two run the same ``run_live`` in this process, which spares a Python start and
#: its imports (about 4 CPU s each) and waits for the push to connect before reading back
THROUGH_THE_CLI = "flv-2^32-ms-49.7d"


async def _on_air_through_the_cli(url: str, record: Path, start_at: float) -> list[dict[str, Any]]:
    live = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avatarcast.cli", "live",
        "--catalog", str(DEMO), "--lang", "en",
        "--to", url, "--record", str(record), "--duration", str(SECONDS),
        "--start-at", repr(start_at),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        packets = await asyncio.to_thread(_packets, url, READ_S)
    finally:
        out = (await asyncio.wait_for(live.communicate(), 180))[0].decode(errors="replace")
    assert live.returncode == 0, out[-2000:]
    return packets


async def _on_air_in_process(url: str, record: Path, start_at: float) -> list[dict[str, Any]]:
    control = LiveControl()
    opts = LiveOptions(
        programme=ProgrammeOptions(catalog_path=DEMO, lang="en"),
        destinations=(url,),
        record_dir=record,
        duration=SECONDS,
        start_at=start_at,
    )
    task = asyncio.create_task(run_live(opts, control=control))
    try:
        while [d.state for d in control.status().destinations] != ["connected"]:
            assert not task.done(), task
            await asyncio.sleep(0.1)
        packets = await asyncio.to_thread(_packets, url, READ_S)
    finally:
        final = await asyncio.wait_for(task, 180)
    assert final.state == "stopped" and final.frames == SECONDS * 25, final
    return packets


@pytest.mark.parametrize("limit", list(LIMITS), ids=list(LIMITS))
async def test_live_past_a_limit_reads_back_from_nginx_and_the_recording(
    limit: str,
    tmp_path: Path,
    rtmp_server: RtmpServer,  # noqa: F811
) -> None:
    start_at = LIMITS[limit] - 3.0  # the limit is crossed 3 s into the stream
    url = rtmp_server.url("longrun")
    record = tmp_path / "rec"
    on_air = _on_air_through_the_cli if limit == THROUGH_THE_CLI else _on_air_in_process
    packets = await on_air(url, record, start_at)
    video = [int(p["pts"]) for p in packets if p["codec_type"] == "video"]
    audio = [int(p["pts"]) for p in packets if p["codec_type"] == "audio"]
    if start_at < MAX_CONNECTION_S:  # programme time on the wire while it fits
        assert (start_at - 0.04) * 1000 <= video[0] < (start_at + SECONDS + 1) * 1000, video[:3]
    else:  # past it, counted from the connection (its first keyframe at 1 s)
        assert 1000 <= video[0] < 9000 and video[-1] < 12000, (video[:3], video[-3:])
    _steady(video, 40)
    _steady(audio, 1024 / 48)
    _check_the_recording(record, start_at)


async def test_a_connection_is_renewed_before_its_timestamps_run_out(
    rtmp_server: RtmpServer,  # noqa: F811
) -> None:
    """The renewal itself, with a 3 s connection limit instead of 24.9 days: the push
    reconnects at a keyframe and the new connection counts from 1 s again."""
    fmt = StreamFormat()
    url = rtmp_server.url("renew")
    enc = Encoder(fmt)
    sink = RtmpSink(url, metadata={}, max_connection_s=3.0)
    await sink.open(enc.headers)
    start = round((2**31 / 1000 - 1) * fmt.fps)  # programme time past the FLV wrap
    seen: list[list[dict[str, Any]]] = []

    async def watch() -> None:
        while len(seen) < 2:
            seen.append(await asyncio.to_thread(_packets, url, 1.5))

    watching = asyncio.create_task(watch())
    t0 = time.monotonic()
    # on air until both reads are done (each waits for its ffprobe to start): a fixed 14 s ran
    # out before the second read began at load 6-9, which then read a silent connection
    for frame in frames(fmt, 90, start=start):
        for p in await asyncio.to_thread(enc.encode, frame):
            await sink.write(p)
        await asyncio.sleep(max(0.0, t0 + (frame.pts + 1 - start) / fmt.fps - time.monotonic()))
        if watching.done():
            break
    await watching
    status = sink.status()
    await sink.aclose()
    # renewed at least once (a renewal is a reconnect: on a busy machine the queue may drop a
    # GOP meanwhile, as for any reconnect; at 24.9 days per connection that is rare)
    assert status["reconnects"] >= 1, status
    for packets in seen:
        video = [int(p["pts"]) for p in packets if p["codec_type"] == "video"]
        assert 1000 <= video[0] and video[-1] <= 1000 + 4000 + 40, video  # 3 s + a GOP
