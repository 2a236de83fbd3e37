"""Sinks take already-encoded packets: one encode, many sinks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from avatarcast.frames import EncodedPacket, ProgrammeFrame, StreamFormat


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
    """A destination of the encoded programme. Writes must not block the event loop.

    The frame loop hands each frame's packets to ``write_batch`` in one call, so a sink that
    passes packets to a thread or a process wakes it once per frame, not once per packet.
    """

    name: str

    async def open(self, headers: StreamHeaders) -> None: ...

    async def write(self, packet: EncodedPacket) -> None: ...

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Restartable(Protocol):
    """An output or encoder that can start afresh mid-stream (a monitor's remedy): a sink
    reconnects or opens a new segment; an encoder reopens its video codec (next frame IDR)."""

    async def restart(self) -> None: ...


@runtime_checkable
class RestartableEncoder(Protocol):
    """An encoder whose video codec can be reopened mid-stream: the next frame is an IDR
    made by a fresh x264, with the same parameters (so the same headers) and pts going on."""

    def restart_video(self) -> None: ...


class FrameEncoder(Protocol):
    """Turns programme frames into packets: the one encode every sink shares."""

    @property
    def headers(self) -> StreamHeaders: ...

    @property
    def cpu_seconds(self) -> Mapping[str, float]:
        """CPU seconds spent per codec ("x264", "aac"); empty where it cannot be measured."""
        ...

    def encode(self, frame: ProgrammeFrame) -> list[EncodedPacket]: ...

    def flush(self) -> list[EncodedPacket]: ...

    def close(self) -> None:
        """Release the encoder (a child process, shared memory); safe to call twice."""
        ...
