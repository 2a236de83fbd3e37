"""WHEP served from its own process: viewers over real HTTP and WebRTC on loopback.

The synthetic live programme of ``test_whep`` feeds a ``WhepProcess``; the viewers talk to the
child's HTTP endpoint exactly as they talk to an in-process one. A stopped (SIGSTOP) child
stands for one that cannot keep up: the programme's calls must stay instant.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from avatarcast.errors import OutputError
from avatarcast.output.whep_process import WhepProcess
from test_whep import FMT, LiveSource, Viewer


@pytest.fixture
async def served() -> AsyncIterator[tuple[WhepProcess, LiveSource]]:
    whep = WhepProcess(port=0, max_viewers=3)
    url = await whep.start()
    assert url.startswith("http://127.0.0.1:")
    source = LiveSource(whep)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.running.wait(), 10)
        yield whep, source
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await whep.aclose()
    assert whep._process is not None and whep._process.returncode == 0


async def test_viewers_watch_through_the_child_process(
    served: tuple[WhepProcess, LiveSource],
) -> None:
    whep, _ = served
    viewers = [Viewer(), Viewer()]
    async with httpx.AsyncClient(base_url=str(whep.url)) as client:
        try:
            responses = await asyncio.gather(*(v.start(client, "/whep") for v in viewers))
            assert [r.status_code for r in responses] == [201, 201], responses[0].text
            for viewer in viewers:
                await viewer.wait_for_video()
            await asyncio.sleep(4.1)
            for viewer in viewers:
                assert viewer.frames_within(4.0) >= 90, viewer.frames_within(4.0)
                assert viewer.sizes == {(1280, 720)}
                assert viewer.audio_frames > 0

            bad = await client.post(
                "/whep", content="v=0\r\nnot sdp", headers={"Content-Type": "application/sdp"}
            )
            assert bad.status_code == 400 and "SDP" in json.loads(bad.text)["detail"]

            location = viewers[0].location
            assert (await client.delete(location)).status_code == 200
            await asyncio.wait_for(viewers[0].ended.wait(), 10)
            assert (await client.delete(location)).status_code == 404
            before = len(viewers[1].video_times)
            await asyncio.sleep(1.0)
            assert len(viewers[1].video_times) - before >= 20  # the other one goes on
        finally:
            for viewer in viewers:
                await viewer.close()


async def test_busy_port_fails_start_with_an_output_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        whep = WhepProcess(port=taken.getsockname()[1])
        with pytest.raises(OutputError, match="already in use"):
            await whep.start()
        await whep.aclose()


async def test_a_stalled_child_never_holds_up_the_programme() -> None:
    whep = WhepProcess(port=0, max_queue=60)
    await whep.start()
    assert whep._process is not None
    flood = LiveSource(whep)  # its own encoder: the live source below starts again at pts 0
    await whep.open(flood.encoder.headers)
    frames = [flood.frame(n) for n in range(10)]
    packets = [p for f in frames for p in flood.encoder.encode(f) if p.kind == "video"]
    watcher = Viewer()  # media goes to the child only while someone watches
    async with httpx.AsyncClient(base_url=str(whep.url)) as client:
        for _ in range(50):  # 503 until the child has taken the "open"
            if (await watcher.start(client, "/whep")).status_code == 201:
                break
            await watcher.close()
            watcher = Viewer()
            await asyncio.sleep(0.2)
    await _until(lambda: whep.watched, 10)
    os.kill(whep._process.pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for n in range(3000):  # 2 min of media: far more than the pipe and the queue hold
            t0 = time.perf_counter()
            await whep.write(packets[n % len(packets)])
            whep.push_pcm(frames[n % 10].pcm, pts=n * FMT.samples_per_frame)
            slowest = max(slowest, time.perf_counter() - t0)
        assert slowest < 0.05, f"a write took {slowest * 1000:.0f} ms"
        assert len(whep._queue) <= 60
        assert whep.dropped > 2000
    finally:
        os.kill(whep._process.pid, signal.SIGCONT)
    source = LiveSource(whep)
    task = asyncio.create_task(source.run())  # the child recovers and serves a viewer
    viewer = Viewer()
    try:
        async with httpx.AsyncClient(base_url=str(whep.url)) as client:
            for _ in range(50):  # 503 until the child has taken the queued "open"
                response = await viewer.start(client, "/whep")
                if response.status_code == 201:
                    break
                await viewer.close()
                viewer = Viewer()
                await asyncio.sleep(0.2)
            assert response.status_code == 201, response.text
            await viewer.wait_for_video()
    finally:
        await viewer.close()
        await watcher.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await whep.aclose()


async def test_an_idle_stream_feeds_the_child_nothing_and_a_first_viewer_still_sees_video(
    served: tuple[WhepProcess, LiveSource],
) -> None:
    whep, source = served
    for _ in range(100):  # 30 frames with nobody watching (1.2 s; polled: a fixed 1 s saw 29)
        if source.frames >= 30:
            break
        await asyncio.sleep(0.1)
    assert source.frames >= 30 and whep.forwarded == 0 and not whep.watched
    viewer = Viewer()
    async with httpx.AsyncClient(base_url=str(whep.url)) as client:
        try:
            response = await viewer.start(client, "/whep")
            assert response.status_code == 201, response.text
            await viewer.wait_for_video()  # decoded, within 8 s: the next IDR (every 2 s)
            assert whep.watched and whep.forwarded > 0
            await asyncio.sleep(2.0)
            assert viewer.frames_within(1.5) >= 30, viewer.frames_within(1.5)
            assert viewer.sizes == {(1280, 720)} and viewer.audio_frames > 0
            assert (await client.delete(viewer.location)).status_code == 200
            await _until(lambda: not whep.watched, 10)
            await asyncio.sleep(0.2)  # what was queued before the news drains
            after_leave = whep.forwarded
            await asyncio.sleep(1.0)
            assert whep.forwarded == after_leave  # the feed stopped with the last viewer
        finally:
            await viewer.close()


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        await asyncio.sleep(0.05)
