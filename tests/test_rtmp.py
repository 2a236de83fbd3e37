"""RTMP push against a real nginx-rtmp server, read back with ffprobe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avatarcast.errors import ConfigError
from avatarcast.frames import StreamFormat
from avatarcast.output._rtmp_push import trim_gops
from avatarcast.output.encoder import Encoder
from avatarcast.output.mp4 import NullSink
from avatarcast.output.rtmp import RtmpSink, redact_url
from conftest_rtmp import rtmp_server  # noqa: F401  (the lead wires it into conftest.py)
from rtmp_server import RtmpServer, free_port
from synthetic_programme import ffprobe, frames

FMT = StreamFormat(metadata={"title": "Live demo"})
KEY = "sk_live_9f8e7d6c5b4a"
LABEL = {"aigc": "AI-generated content", "comment": "synthetic"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/live/" + KEY,
        "rtmp:///live/" + KEY,
        "rtmp://127.0.0.1/live",
        "rtmp://127.0.0.1/" + KEY,
        "rtmp://127.0.0.1:99999/live/" + KEY,
        "srt://127.0.0.1/live/" + KEY,
    ],
)
def test_malformed_url_is_a_config_error_without_the_key(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RtmpSink(url, metadata={})
    assert KEY not in str(caught.value)


def test_redact_url() -> None:
    assert redact_url(f"rtmp://a.example:1935/live/{KEY}") == "rtmp://a.example:1935/live/****"
    assert (
        redact_url(f"rtmps://u:pw@x.example/app/sub/{KEY}?t=1") == "rtmps://x.example/app/sub/****"
    )


async def push(
    sinks: list[Any],
    seconds: float,
    *,
    start: int = 0,
    enc: Encoder,
    until: Callable[[], bool] | None = None,
) -> int:
    """Encode and write in real time (paced on the media clock); returns the next pts."""
    t0 = time.monotonic()
    pts = start
    for frame in frames(FMT, seconds, start=start):
        for p in await asyncio.to_thread(enc.encode, frame):
            for s in sinks:
                await s.write(p)
        pts = frame.pts + 1
        await asyncio.sleep(max(0.0, t0 + (pts - start) / FMT.fps - time.monotonic()))
        if until is not None and until():
            break
    return pts


async def probe(url: str) -> dict[str, Any]:
    return await asyncio.to_thread(ffprobe, url, "-show_streams", "-show_format", timeout=20)


async def test_push_reconnect_and_read_back(
    rtmp_server: RtmpServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = rtmp_server.url(KEY)
    enc = Encoder(FMT)
    sink = RtmpSink(url, metadata=LABEL, backoff_start=0.25, backoff_cap=1.0)
    witness = NullSink()
    sinks = [sink, witness]
    for s in sinks:
        await s.open(enc.headers)
    written = 0

    class Counting:
        async def write(self, p: object) -> None:
            nonlocal written
            written += 1

    sinks.append(Counting())

    reading = asyncio.create_task(probe(url))
    pts = await push(sinks, 20, enc=enc, until=reading.done)
    info = await reading
    streams = {s["codec_type"]: s for s in info["streams"]}
    v, a = streams["video"], streams["audio"]
    assert (v["codec_name"], v["width"], v["height"], v["r_frame_rate"]) == (
        "h264",
        1280,
        720,
        "25/1",
    )
    assert (a["codec_name"], a["sample_rate"]) == ("aac", "48000")
    tags = info["format"]["tags"]
    assert tags["aigc"] == LABEL["aigc"]
    assert tags["title"] == "Live demo"
    assert sink.status()["state"] == "connected"

    rtmp_server.stop()
    states = set()
    pts = await push(sinks, 2, start=pts, enc=enc)
    states.add(sink.status()["state"])
    rtmp_server.start()
    pts = await push(
        sinks, 10, start=pts, enc=enc, until=lambda: sink.status()["state"] == "connected"
    )
    status = sink.status()
    assert "retrying" in states
    assert status["state"] == "connected"
    assert status["reconnects"] >= 1
    assert status["last_error"]

    reading = asyncio.create_task(probe(url))
    await push(sinks, 20, start=pts, enc=enc, until=reading.done)
    info = await reading
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}

    await sink.aclose()
    assert witness.packets == written  # the second sink saw every packet throughout
    status = sink.status()
    assert status["bytes_sent"] > 100_000
    text = str(status) + "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in text
    assert "retrying" in states


async def test_nginx_default_meta_drops_custom_fields(tmp_path: Path) -> None:
    """Documents nginx-rtmp: without ``meta copy`` players get its own onMetaData."""
    server = RtmpServer(tmp_path / "nginx", meta="on")
    server.start()
    try:
        enc = Encoder(FMT)
        sink = RtmpSink(server.url(KEY), metadata=LABEL)
        await sink.open(enc.headers)
        reading = asyncio.create_task(probe(server.url(KEY)))
        await push([sink], 20, enc=enc, until=reading.done)
        tags = (await reading)["format"].get("tags", {})
        await sink.aclose()
    finally:
        server.stop()
    assert "aigc" not in tags
    assert "Server" in tags


def test_trim_drops_whole_gops_from_the_head() -> None:
    enc = Encoder(FMT)
    # 5 s, GOPs at 0, 2 and 4 s: trimmed to 3 s, the first goes (10 s encoded 2 CPU s)
    queue = deque(p for f in frames(FMT, 5) for p in enc.encode(f))
    dropped = trim_gops(queue, 3)
    head, tail = queue[0], queue[-1]
    assert dropped > 0
    assert head.kind == "video" and head.keyframe
    assert tail.dts * tail.time_base - head.dts * head.time_base <= 3


async def test_dead_destination_never_blocks_and_drops() -> None:
    port = free_port()
    sink = RtmpSink(
        f"rtmp://127.0.0.1:{port}/live/{KEY}", metadata={}, max_queue_seconds=3, backoff_start=5
    )
    enc = Encoder(FMT)
    await sink.open(enc.headers)
    packets = [p for f in frames(FMT, 5) for p in enc.encode(f)]  # past the 3 s queue
    t0 = time.monotonic()
    for p in packets:
        await sink.write(p)
    assert time.monotonic() - t0 < 0.5
    # the drop and the first refused connect both come: which is first depends on the encode's
    # speed (5 s of packets encoded sooner than the connect failed once in a 4-worker run)
    status = await wait_for(sink, lambda s: s["dropped_packets"] > 0 and bool(s["last_error"]))
    assert status["state"] in {"retrying", "connecting"}
    assert "Connection refused" in status["last_error"]
    assert KEY not in str(status)
    await sink.aclose()
    assert sink.status()["state"] == "closed"


async def test_silent_server_cannot_freeze_the_programme() -> None:
    """PyAV connects holding the GIL with no timeout: only the child process may hang."""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    sink = RtmpSink(
        f"rtmp://127.0.0.1:{listener.getsockname()[1]}/live/{KEY}", metadata={}, close_timeout=1
    )
    enc = Encoder(FMT)
    await sink.open(enc.headers)
    t0 = time.monotonic()
    ticks = 0
    for _ in range(40):  # the event loop keeps its 50 ms cadence meanwhile
        await asyncio.sleep(0.05)
        ticks += 1
    assert time.monotonic() - t0 < 3.0
    assert sink.status()["state"] == "connecting"
    t0 = time.monotonic()
    await sink.aclose()
    assert time.monotonic() - t0 < 4.0
    listener.close()


async def test_rtmps_goes_through_tls() -> None:
    """A server that answers the TLS hello with RTMP bytes: the error must come from TLS."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                if conn.recv(4096):
                    conn.sendall(b"\x03" + bytes(1536))  # an RTMP S0/S1, not a ServerHello

    threading.Thread(target=serve, daemon=True).start()
    sink = RtmpSink(f"rtmps://127.0.0.1:{port}/live/{KEY}", metadata={}, backoff_start=5)
    enc = Encoder(FMT)
    await sink.open(enc.headers)
    status = await wait_for(sink, lambda s: s["state"] == "retrying")
    await sink.aclose()
    listener.close()
    assert status["state"] == "retrying"
    assert status["last_error"] and KEY not in status["last_error"]


async def wait_for(sink: RtmpSink, cond: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(200):
        status = sink.status()
        if cond(status):
            return status
        await asyncio.sleep(0.05)
    return sink.status()


def test_nginx_is_installed() -> None:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True)
    assert "nginx" in out.stderr
