"""A WHEP viewer's track: frames packetized once, queued per viewer, sent by aiortc as they are.

Video is gated: nothing is queued until a keyframe, and an overflow empties the queue and
waits for the next keyframe again. Audio overflow just drops what is queued. So a viewer that
falls behind loses frames, never memory, and never holds back the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCEncodedFrame

from avatarcast.errors import OutputError

__all__ = ["Packed", "PacketTrack"]


@dataclass(frozen=True, slots=True)
class Packed:
    """One encoded frame as RTP payloads (made once, shared by every viewer) and its timestamp."""

    payloads: list[bytes]
    timestamp: int  # RTP clock, before the sender adds its random origin


class PacketTrack(MediaStreamTrack):
    """A track whose ``recv`` hands aiortc already-packetized frames from a bounded queue.

    Video is gated: nothing is queued until a keyframe, and an overflow empties the queue and
    waits for the next keyframe again. Audio overflow just drops what is queued.
    """

    def __init__(self, kind: Literal["audio", "video"], *, capacity: int) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[Packed] = asyncio.Queue(capacity)
        self._awaiting_key = kind == "video"
        self._lagging = False
        self.sent = 0
        self.dropped = 0

    def offer(self, packet: Packed, *, keyframe: bool) -> None:
        if self.readyState != "live":
            return
        if self._awaiting_key and not keyframe:
            self.dropped += self._lagging  # a late join skips; a lagging viewer loses
            return
        self._awaiting_key = self._lagging = False
        if self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
                self.dropped += 1
            if self.kind == "video" and not keyframe:
                self._awaiting_key = self._lagging = True
                self.dropped += 1
                return
        self._queue.put_nowait(packet)

    async def recv(self) -> Packed:  # type: ignore[override]  # read only by feed()
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        self.sent += 1
        return packet

    def feed(self, sender: RTCRtpSender) -> None:
        """Make ``sender`` send this track's shared payloads as they are, with no packer.

        aiortc's sender loop asks ``_next_encoded_frame`` for payloads and then only writes
        headers, SRTP and RTCP; answering that call here skips its per-viewer packetizer.
        """

        if not callable(getattr(sender, "_next_encoded_frame", None)):
            raise OutputError(
                "this aiortc's RTCRtpSender has no _next_encoded_frame to feed shared RTP "
                "payloads through (aiortc 1.16 has it)"
            )

        async def next_encoded_frame(codec: Any) -> RTCEncodedFrame:
            packed = await self.recv()
            return RTCEncodedFrame(packed.payloads, packed.timestamp, None)  # type: ignore[arg-type]

        sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]
