"""Acceptance of going live: the real programme to a real nginx-rtmp, a recording and WHEP."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import av
import pytest

from avatarcast.errors import ConfigError
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.pipeline.spec import ProgrammeOptions
from rtmp_server import RtmpServer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
FPS = 25
#: the destination outage: long enough for three failed reconnects at a 0.25 s backoff
OUTAGE_S = 3.5


def _opts(**kw: Any) -> LiveOptions:
    return LiveOptions(programme=ProgrammeOptions(catalog_path=DEMO, lang="nl"), **kw)


async def _probe(url: str, *args: str, limit: float = 20) -> Any:
    exe = shutil.which("ffprobe")
    assert exe, "ffprobe is required: apt-get install ffmpeg"
    proc = await asyncio.create_subprocess_exec(
        exe,
        "-v",
        "error",
        "-rw_timeout",
        "8000000",
        "-print_format",
        "json",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def _recorded_frames(folder: Path) -> int:
    frames = 0
    for seg in sorted(folder.glob("segment-*.mp4")):
        with av.open(str(seg)) as c:
            frames += sum(1 for _ in c.decode(video=0))
    return frames


async def _until_connected(control: LiveControl, task: asyncio.Task[Any]) -> None:
    """Poll until every destination is connected and a second of frames went out."""
    t0 = asyncio.get_running_loop().time()
    while True:
        status = control.status()
        if status.frames > FPS and all(d.state == "connected" for d in status.destinations):
            return
        assert asyncio.get_running_loop().time() - t0 < 60, status
        assert not task.done(), task
        await asyncio.sleep(0.1)


async def test_rtmp_push_is_readable_with_label_metadata(
    rtmp_server: RtmpServer, tmp_path: Path
) -> None:
    """Probed while on air, then stopped (``duration`` is only an upper bound)."""
    control = LiveControl()
    url = rtmp_server.url("main-secret-key")
    task = asyncio.create_task(
        run_live(
            _opts(destinations=(url,), record_dir=tmp_path / "rec", duration=60), control=control
        )
    )
    await _until_connected(control, task)
    # both read the live stream at once: one stretch of streaming instead of two in a row
    info, packets = await asyncio.gather(
        _probe(url, "-show_streams", "-show_format"),
        _probe(
            url,
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,flags",
            "-read_intervals",
            "%+4.5",
        ),
    )
    assert not task.done()
    control.stop()
    final = await task
    streams = {s["codec_type"]: s for s in info["streams"]}
    v, a = streams["video"], streams["audio"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 1280, 720)
    assert v["avg_frame_rate"] in ("25/1", "25")
    assert a["codec_name"] == "aac" and int(a["sample_rate"]) == 48000
    tags = {k.lower(): val for k, val in info["format"].get("tags", {}).items()}
    aigc = json.loads(tags["aigc"])
    assert aigc["Label"] == "1" and "ContentProducer" in aigc and "ProduceID" in aigc
    assert "ai" in tags["ai_label"].lower()
    keys = [float(p["pts_time"]) for p in packets["packets"] if "K" in p["flags"]]
    assert len(keys) >= 2
    assert max(b - a for a, b in itertools.pairwise(keys)) <= 2.0 + 1e-6
    assert final.state == "stopped"
    assert "main-secret-key" not in json.dumps(final.as_dict())
    assert final.destinations[0].state in ("connected", "closed")


async def test_destination_outage_recovers_and_others_keep_going(tmp_path: Path) -> None:
    """A 3.5 s outage of one destination (reconnect attempts at 0.25, 0.75, 1.75, 2.75 s: a
    0.25 s backoff capped at 1 s gives the three failed attempts a 1 s start needed 8 s for):
    the other gets data every half second, the first reconnects, the recording loses no frame.
    The stream is stopped once that is seen (``duration`` is only an upper bound)."""
    a, b = RtmpServer(tmp_path / "a"), RtmpServer(tmp_path / "b")
    a.start()
    b.start()
    control = LiveControl()
    opts = _opts(
        destinations=(a.url("key-a"), b.url("key-b")),
        record_dir=tmp_path / "rec",
        segment_seconds=10,
        duration=90.0,
        backoff_start=0.25,
        backoff_cap=1.0,
    )
    try:
        task = asyncio.create_task(run_live(opts, control=control))
        t0 = asyncio.get_running_loop().time()
        while [d.state for d in control.status().destinations] != ["connected"] * 2:
            assert asyncio.get_running_loop().time() - t0 < 60, control.status()
            assert not task.done()
            await asyncio.sleep(0.1)
        a.stop()
        down_at = asyncio.get_running_loop().time()
        b_bytes = [control.status().destinations[1].bytes_sent]
        while asyncio.get_running_loop().time() - down_at < OUTAGE_S:
            await asyncio.sleep(0.5)
            b_bytes.append(control.status().destinations[1].bytes_sent)
        assert control.status().destinations[0].state in ("retrying", "connecting")
        a.start()
        back_at = asyncio.get_running_loop().time()
        while control.status().destinations[0].state != "connected":
            assert asyncio.get_running_loop().time() - back_at < 12.0, control.status()
            await asyncio.sleep(0.25)
        info = await _probe(a.url("key-a"), "-show_streams")
        assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}
        assert not task.done()
        control.stop()
        final = await task
    finally:
        a.stop()
        b.stop()
    # the backup destination received data every half second of the outage
    assert len(b_bytes) >= 2 * OUTAGE_S and all(y > x for x, y in itertools.pairwise(b_bytes))
    assert final.destinations[0].reconnects >= 1
    assert final.frames > OUTAGE_S * FPS  # connected, the outage, then the reconnect
    assert abs(_recorded_frames(tmp_path / "rec") - final.frames) <= 1


async def test_timestamps_continue_past_4h39m(rtmp_server: RtmpServer, tmp_path: Path) -> None:
    """RTMP's 24-bit timestamp runs out at 16777.215 s (4:39:37); extended ones take over."""
    start = 16777.215 - 1.0  # a second before the limit: the push crosses it live
    url = rtmp_server.url("ext")
    control = LiveControl()
    opts = _opts(destinations=(url,), start_at=start, duration=60)  # stopped once read back
    task = asyncio.create_task(run_live(opts, control=control))
    # 2.5 s past the limit: a reader's first keyframe (one each 2 s at most) is past it too
    while control.status().media_time_s < 3.5:
        assert not task.done()
        await asyncio.sleep(0.1)
    packets = await _probe(
        url, "-select_streams", "v", "-show_entries", "packet=pts_time", "-read_intervals", "%+1.5"
    )
    assert not task.done()
    control.stop()
    await task
    times = [float(p["pts_time"]) for p in packets["packets"] if p.get("pts_time")]
    assert len(times) >= 25
    assert min(times) > 16777.215 and max(times) < start + control.status().media_time_s + 1
    assert all(y > x for x, y in itertools.pairwise(times))


async def test_bad_outputs_fail_clearly_and_the_rest_keeps_running(
    rtmp_server: RtmpServer, tmp_path: Path
) -> None:
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    good = rtmp_server.url("good")
    control = LiveControl()
    opts = _opts(
        destinations=("rtmp://127.0.0.1:1/live/unreachable-key", "http://example/x", good),
        record_dir=tmp_path / "rec",
        whep_port=port,
        duration=4,
    )
    try:
        final = await run_live(opts, control=control)
    finally:
        busy.close()
    dests = {d.name: d for d in final.destinations}
    assert "unreachable-key" not in json.dumps(final.as_dict())
    unreachable = dests["rtmp://127.0.0.1:1/live/****"]
    assert unreachable.reconnects >= 0 and unreachable.last_error
    malformed = next(d for n, d in dests.items() if n.startswith("http"))
    assert malformed.state == "failed" and "must start with rtmp://" in (malformed.last_error or "")
    assert dests[f"{good.rsplit('/', 1)[0]}/****"].bytes_sent > 0
    assert "in use" in (final.whep_error or "")
    assert abs(_recorded_frames(tmp_path / "rec") - 4 * FPS) <= 1


async def test_unknown_options_refused_before_going_live(tmp_path: Path) -> None:
    opts = LiveOptions(programme=ProgrammeOptions(catalog_path=DEMO, lang="xx"))
    with pytest.raises(ConfigError, match="xx"):
        await run_live(opts)


async def test_whep_viewers_watch_the_live_programme(tmp_path: Path) -> None:
    """An aiortc viewer and headless Chromium both watch the real programme over WHEP."""
    import tempfile

    import httpx

    from test_whep import (
        _AUDIO_PACKETS,
        _DECODED_FRAMES,
        CHROMIUM,
        CHROMIUM_ARGS,
        Viewer,
        _require_chromium,
    )

    _require_chromium()
    from playwright.async_api import async_playwright

    control = LiveControl()
    task = asyncio.create_task(run_live(_opts(whep_port=0, duration=30), control=control))
    while control.status().whep_url is None:
        assert not task.done(), task
        await asyncio.sleep(0.1)
    base = control.status().whep_url
    viewer = Viewer()
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            response = await viewer.start(client, "/whep")
            assert response.status_code == 201, response.text
            await viewer.wait_for_video()
            # 2 s at the rate test_whep's 10 s real-time check asks (24 fps): the programme's
            # frames and sound reach the viewer; that the WHEP output keeps up is test_whep's
            await asyncio.sleep(2.2)
            assert viewer.frames_within(2.0) >= 48, viewer.frames_within(2.0)
            assert viewer.sizes == {(1280, 720)}
            assert viewer.audio_frames >= 60  # 20 ms each: >= 1.2 s
        profile = tempfile.mkdtemp(prefix="live-chromium-")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page()
                await page.goto(base + "/whep/player", wait_until="commit", timeout=60_000)
                await page.wait_for_function(
                    "document.getElementById('video').videoWidth === 1280", timeout=30_000
                )
                first = await page.evaluate(_DECODED_FRAMES)
                await asyncio.sleep(2)  # 15 fps decoded over 2 s: it plays
                assert await page.evaluate(_DECODED_FRAMES) - first >= 30
                tracks = "document.getElementById('video').srcObject.getAudioTracks().length"
                assert await page.evaluate(tracks) >= 1
                assert await page.evaluate(_AUDIO_PACKETS) > 0
            finally:
                await browser.close()
    finally:
        await viewer.close()
        control.stop()
        await task
