"""Sinks take already-encoded packets: one encode, many sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from avatarcast.frames import EncodedPacket, StreamFormat


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamHeaders:
    """What a muxer needs besides packets: codec parameters from the one encoder."""

    format: StreamFormat
    video_codec: str
    video_extradata: bytes
    audio_codec: str
    audio_extradata: bytes
    audio_frame_size: int


class Sink(Protocol):
    """A destination of the encoded programme. ``write`` must not block the event loop."""

    name: str

    async def open(self, headers: StreamHeaders) -> None: ...

    async def write(self, packet: EncodedPacket) -> None: ...

    async def aclose(self) -> None: ...
