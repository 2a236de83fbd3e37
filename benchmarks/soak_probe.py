"""What the soak reads from outside the server: a process tree in /proc, and WHEP viewers.

``tree_sample(pid)`` sums over a stream worker and its children (the RTMP push and WHEP
processes): RSS, its anonymous part (the heap, where a leak grows; the rest is mapped files),
PSS (``smaps_rollup``: shared pages split between the processes that map them, so the spare
worker's and the API's shared libraries are not counted whole), open fds, threads and CPU
seconds. A process that exits mid-read is skipped, not an error.

``Viewers`` keeps aiortc WHEP clients on the streams from a thread with its own event loop:
each stream gets a viewer for ``watch_s`` every ``every_s`` (a new session each time, so the
server's set-up and tear-down run all night), counting complete video frames that come out of
aiortc's jitter buffer without decoding them (the decode would measure this process, not the
server; benchmarks/live_capacity.py's ``assemble`` mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_capacity import _null_video_decoder
from procstat import CLK_TCK
from procstat import children_by_parent as _children


@dataclass
class TreeSample:
    pids: int = 0
    rss_mb: float = 0.0
    anon_mb: float = 0.0
    pss_mb: float = 0.0
    fds: int = 0
    threads: int = 0
    cpu_s: float = 0.0


def tree(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    kids = _children() if children is None else children
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, ())
    return out


def _kb(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def tree_sample(pid: int, children: dict[int, list[int]] | None = None) -> TreeSample:
    s = TreeSample()
    for p in tree(pid, children):
        base = Path(f"/proc/{p}")
        try:
            status = (base / "status").read_text()
            stat = (base / "stat").read_text().rsplit(")", 1)[1].split()
            rollup = (base / "smaps_rollup").read_text()
            fds = len(os.listdir(base / "fd"))
        except (OSError, IndexError):
            continue
        s.pids += 1
        s.rss_mb += _kb(status, "VmRSS:") / 1024
        s.anon_mb += _kb(status, "RssAnon:") / 1024
        s.pss_mb += _kb(rollup, "Pss:") / 1024
        s.threads += _kb(status, "Threads:")
        s.fds += fds
        s.cpu_s += (int(stat[11]) + int(stat[12])) / CLK_TCK
    return s


@dataclass
class ViewerLog:
    """Per stream: sessions tried, sessions that got video, video frames, last error."""

    sessions: int = 0
    watched: int = 0
    frames: int = 0
    errors: list[str] = field(default_factory=list)


class Viewers:
    """WHEP viewers on each stream in turn; ``endpoint(i)`` gives stream i's WHEP URL now."""

    def __init__(self, endpoints: list[str], *, watch_s: float, every_s: float) -> None:
        self.endpoints = endpoints
        self.watch_s = watch_s
        self.every_s = every_s
        self.logs = [ViewerLog() for _ in endpoints]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="whep-viewers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.watch_s + 30)

    def _run(self) -> None:
        _null_video_decoder()
        asyncio.run(self._main())

    async def _main(self) -> None:
        n = len(self.endpoints)
        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(self._loop(i, delay=i * self.every_s / n))

    async def _loop(self, i: int, *, delay: float) -> None:
        await self._sleep(delay)
        while not self._stop.is_set():
            started = time.monotonic()
            await self._watch(i)
            await self._sleep(self.every_s - (time.monotonic() - started))

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking each second to see whether the run has ended (a threading.Event)."""
        end = time.monotonic() + max(0.0, seconds)
        while not self._stop.is_set() and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(min(1.0, end - time.monotonic()))

    async def _watch(self, i: int) -> None:
        import httpx
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        log = self.logs[i]
        log.sessions += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        frames = [0]
        tasks: set[asyncio.Task[None]] = set()

        async def consume(track: Any) -> None:
            with contextlib.suppress(Exception):
                while True:
                    await track.recv()
                    if track.kind == "video":
                        frames[0] += 1

        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", lambda track: tasks.add(asyncio.ensure_future(consume(track))))
        location = ""
        try:
            async with httpx.AsyncClient(timeout=20, trust_env=False) as http:
                await pc.setLocalDescription(await pc.createOffer())
                r = await http.post(
                    self.endpoints[i],
                    content=pc.localDescription.sdp,
                    headers={"Content-Type": "application/sdp"},
                )
                if r.status_code != 201:
                    log.errors.append(f"{time.time():.0f} {r.status_code} {r.text[:120]}")
                    return
                location = r.headers.get("location", "")
                await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
                await self._sleep(self.watch_s)
                if location:  # leave as a player does: DELETE the session
                    base, _, query = self.endpoints[i].partition("/v1/")
                    url = location if location.startswith("http") else base + location
                    url += "?" + query.partition("?")[2]
                    with contextlib.suppress(httpx.HTTPError):
                        await http.delete(url)
        except Exception as e:  # a failed session is a finding in the log, not the end
            log.errors.append(f"{time.time():.0f} {type(e).__name__}: {e}"[:200])
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)
            for t in tasks:
                t.cancel()
            log.frames += frames[0]
            log.watched += frames[0] > 0
