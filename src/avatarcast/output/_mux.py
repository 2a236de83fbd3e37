"""Muxing shared packets with PyAV: streams that carry the one encoder's headers.

PyAV has no public setter for a stream's codec parameters. A stream made by ``add_stream`` has
an encoder context that the container opens when it writes the header, and opening libx264
would write its *own* SPS/PPS into the extradata. So the context is opened here, with the
programme's size and rate, and then its extradata is overwritten with the one encoder's; the
container copies that into the stream parameters and never opens it again. The opened
context never encodes a frame (one thread, smallest lookahead).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from fractions import Fraction
from typing import Any, TypeVar

import av
from av.container import OutputContainer
from av.stream import Stream

from avatarcast.frames import EncodedPacket
from avatarcast.output.base import StreamHeaders
from avatarcast.threads import named_pool

_T = TypeVar("_T")
_SMPTE170M = 6
_RANGE_MPEG = 1


def add_streams(container: OutputContainer, headers: StreamHeaders) -> tuple[Stream, Stream]:
    """Add an H.264 and an AAC stream whose parameters are ``headers``'s; returns (video, audio)."""
    fmt = headers.format
    video = container.add_stream("libx264", rate=fmt.fps)
    vctx: Any = video.codec_context
    vctx.width, vctx.height, vctx.pix_fmt = fmt.width, fmt.height, "yuv420p"
    vctx.time_base = fmt.video_time_base
    vctx.thread_count = 1
    vctx.colorspace = vctx.color_primaries = vctx.color_trc = _SMPTE170M
    vctx.color_range = _RANGE_MPEG
    vctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "bframes=0"}
    vctx.open()
    vctx.extradata = headers.video_extradata
    video.time_base = fmt.video_time_base

    audio = container.add_stream("aac", rate=fmt.sample_rate)
    actx: Any = audio.codec_context
    actx.layout, actx.format = "mono", "fltp"
    actx.time_base = fmt.audio_time_base
    actx.open()
    actx.extradata = headers.audio_extradata
    audio.time_base = fmt.audio_time_base
    return video, audio


def to_av_packet(
    packet: EncodedPacket, stream: Stream, *, offset: Fraction = Fraction(0)
) -> av.Packet[Any]:
    """A PyAV packet for ``stream``; ``offset`` seconds are subtracted from its timestamps."""
    out = av.Packet(packet.data)
    shift = round(offset / packet.time_base) if offset else 0
    out.stream = stream
    out.time_base = packet.time_base
    out.pts = packet.pts - shift
    out.dts = packet.dts - shift
    out.duration = packet.duration
    out.is_keyframe = packet.keyframe
    return out


class SerialWorker:
    """Runs blocking muxer calls in one thread, in order, without blocking the event loop.

    Up to ``max_pending`` calls may be in flight; the caller waits only past that bound, so a
    slow disk applies back-pressure instead of growing memory. The first failure is kept and
    raised by the next ``submit``/``drain``.
    """

    def __init__(self, name: str, *, max_pending: int = 256) -> None:
        self._pool = named_pool(name)
        # plain futures: a finished call does not wake the event loop (once per frame, it
        # did); they are checked on the next submit and awaited only at the bound
        self._pending: deque[Future[None]] = deque()
        self._max = max_pending
        self.error: BaseException | None = None

    async def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` after everything submitted before it and wait for its result."""
        await self.drain()
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def submit(self, fn: Callable[[], None]) -> None:
        """Queue ``fn``; waits only while ``max_pending`` calls are still running."""
        self._reap()
        while len(self._pending) >= self._max:
            await self._wait_oldest()
        self._pending.append(self._pool.submit(fn))

    async def drain(self) -> None:
        while self._pending:
            await self._wait_oldest()

    async def _wait_oldest(self) -> None:
        waiter = asyncio.wrap_future(self._pending[0])
        await asyncio.wait([waiter])
        if not waiter.cancelled():
            waiter.exception()  # retrieved here, raised by _reap from the call's own future
        self._reap()

    def _reap(self) -> None:
        while self._pending and self._pending[0].done():
            exc = self._pending.popleft().exception()
            if exc is not None and self.error is None:
                self.error = exc
        if self.error is not None:
            raise self.error

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
