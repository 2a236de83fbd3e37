"""MPEG-TS byte-level helpers for the HLS sink: where to cut, and tables at each file's start."""

from __future__ import annotations

from typing import Any

import av
from av.stream import Stream

from avatarcast.frames import EncodedPacket

__all__ = [
    "PMT_PID",
    "VIDEO_PID",
    "TsBuffer",
    "av_packet",
    "frame_start",
    "leading_psi",
    "psi_first",
]

_TS = 188
_PAT, _SDT, PMT_PID = 0x0000, 0x0011, 0x1000
_PSI = frozenset({_PAT, _SDT, PMT_PID})
VIDEO_PID = 0x0100  # the muxer's first elementary stream: video, added first


class TsBuffer:
    """Where the muxer writes: bytes collect here until the next cut takes them."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def take(self, upto: int | None = None) -> bytes:
        """The bytes before ``upto`` (all when None); the rest stays."""
        if upto is None or upto >= len(self.data):
            out = bytes(self.data)
            self.data.clear()
            return out
        out = bytes(self.data[:upto])
        del self.data[:upto]
        return out


def av_packet(packet: EncodedPacket, stream: Stream) -> av.Packet[Any]:
    """``to_av_packet`` without an offset: no fraction arithmetic per packet."""
    out = av.Packet(packet.data)
    out.stream = stream
    out.time_base = packet.time_base
    out.pts = packet.pts
    out.dts = packet.dts
    out.duration = packet.duration
    out.is_keyframe = packet.keyframe
    return out


def frame_start(data: bytearray, mark: int) -> int:
    """Where the video packet muxed last begins in ``data``: its first TS packet (payload start
    on the video PID) or the tables the muxer wrote right in front of it, looking from
    ``mark``, where the bytes of that ``mux`` call begin."""
    for i in range(mark, len(data) - _TS + 1, _TS):
        pid = ((data[i + 1] & 0x1F) << 8) | data[i + 2]
        if pid in _PSI or (pid == VIDEO_PID and data[i + 1] & 0x40):
            return i
    return mark


def _pid(data: bytes, i: int) -> int:
    return ((data[i * _TS + 1] & 0x1F) << 8) | data[i * _TS + 2]


def leading_psi(data: bytes) -> bytes:
    """The tables the muxer wrote first (SDT, PAT, PMT), to put in front of a cut without them."""
    n = 0
    while (n + 1) * _TS <= len(data) and _pid(data, n) in _PSI:
        n += 1
    return data[: n * _TS]


def psi_first(data: bytes, psi: bytes) -> bytes:
    """``data`` starting with PAT and PMT: moved up from the first packets, else ``psi`` added.

    Moving a table packet ahead of audio packets keeps the order within each PID, which is all
    MPEG-TS asks.
    """
    count = len(data) // _TS
    head = [_pid(data, i) for i in range(min(count, 16))]
    if head[:1] == [_PAT] or head[:2] == [_SDT, _PAT]:
        return data
    tables = [i for i, pid in enumerate(head) if pid in _PSI]
    if not any(head[i] == _PAT for i in tables):
        return psi + data
    moved = b"".join(data[i * _TS : (i + 1) * _TS] for i in tables)
    rest = b"".join(data[i * _TS : (i + 1) * _TS] for i in range(len(head)) if i not in tables)
    return moved + rest + data[len(head) * _TS :]
