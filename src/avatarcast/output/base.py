"""Sinks take already-encoded packets: one encode, many sinks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class BatchSink(Protocol):
    """A sink that takes one frame's packets in one call.

    The runner prefers ``write_batch`` where a sink has it: a sink that hands packets to a
    thread or a process then wakes it once per frame instead of once per packet.
    """

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None: ...
