"""The encoded output, decoded the cheap way a monitoring player would.

A full H.264 decode of a 720p programme costs 0.57 ms a frame here (0.014 CPU s per media
second, over the monitors' whole budget), so the picture is read from three cheaper things:
the size of every video packet (a P-frame of a few bytes changed nothing on screen), the
keyframes alone (``skip_frame=NONKEY``: one decode per 2 s GOP, 2.5 ms), and, every
``lipsync_every_s``, every frame of a short window for the mouth (in a thread). Every AAC
packet is decoded (0.0015 CPU s per media second).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from avatarcast.frames import EncodedPacket
from avatarcast.health import frame_rms, luma_plane, mouth_openness

__all__ = ["OutputDecoder", "VideoPacketInfo", "lipsync_window_lag"]

Box = tuple[int, int, int, int]
#: the keyframe thumbnail keeps every THUMB_STEP-th pixel of the luma plane
THUMB_STEP = 8


@dataclass(frozen=True, slots=True)
class VideoPacketInfo:
    """One video packet as it left the encoder: its frame, size, and when it reached us."""

    pts: int
    size: int
    keyframe: bool
    arrival: float


def _packet(p: EncodedPacket) -> Any:
    out = av.Packet(p.data)
    out.pts, out.dts, out.time_base = p.pts, p.dts, p.time_base
    return out


def _luma_view(frame: Any) -> npt.NDArray[np.uint8]:
    """The Y plane of a decoded frame, in place for yuv420p (copying the whole 720p picture
    out first costs 0.07 ms a frame, against 0.016 in place)."""
    if frame.format.name != "yuv420p":
        return luma_plane(frame)
    plane = frame.planes[0]
    y = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return y[: frame.height, : frame.width]


class OutputDecoder:
    """Decodes the AAC packets to mono float PCM and the H.264 keyframes to luma thumbnails."""

    def __init__(self, *, video_extradata: bytes, audio_extradata: bytes) -> None:
        self._video_extradata = video_extradata
        self._video = av.CodecContext.create("h264", "r")
        self._video.extradata = video_extradata or None
        self._video.thread_count = 1
        self._video.skip_frame = "NONKEY"
        self._audio = av.CodecContext.create("aac", "r")
        self._audio.extradata = audio_extradata or None

    def keyframe(self, packet: EncodedPacket) -> npt.NDArray[np.uint8] | None:
        """The luma thumbnail of a keyframe packet (None for any other packet)."""
        if not packet.keyframe:
            return None
        try:
            frames = self._video.decode(_packet(packet))
        except av.FFmpegError:
            return None
        for frame in frames:
            return np.ascontiguousarray(_luma_view(frame)[::THUMB_STEP, ::THUMB_STEP])
        return None

    def audio(self, packets: Sequence[EncodedPacket]) -> npt.NDArray[np.float32]:
        """The decoded samples of ``packets`` (mono, float, full scale 1.0)."""
        parts: list[npt.NDArray[np.float32]] = []
        for p in packets:
            try:
                frames = self._audio.decode(_packet(p))
            except av.FFmpegError:
                continue
            for frame in frames:
                if (
                    frame.format.name == "fltp"
                ):  # the first channel in place (the programme is mono)
                    raw = np.frombuffer(memoryview(frame.planes[0]), np.float32)
                    parts.append(raw[: frame.samples])
                else:
                    parts.append(np.asarray(frame.to_ndarray(), dtype=np.float32).mean(axis=0))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def window_decoder(self) -> WindowDecoder:
        return WindowDecoder(self._video_extradata)


class WindowDecoder:
    """Every frame of a run of packets that starts at a keyframe (for the mouth)."""

    def __init__(self, extradata: bytes) -> None:
        self._extradata = extradata

    def mouth_series(self, packets: Sequence[EncodedPacket], box: Box) -> npt.NDArray[np.float64]:
        ctx = av.CodecContext.create("h264", "r")
        ctx.extradata = self._extradata or None
        ctx.thread_count = 1
        out: list[float] = []
        for p in packets:
            try:
                frames = ctx.decode(_packet(p))
            except av.FFmpegError:
                continue
            out.extend(mouth_openness(_luma_view(f), box) for f in frames)
        return np.asarray(out, dtype=np.float64)


#: the least correlation of mouth and voice energy at the best lag for an estimate to count;
#: clean 5 s windows of the demo measure 0.62-0.79, a window with little talk much less
MIN_CORRELATION = 0.4
MAX_LAG_FRAMES = 8


def lipsync_window_lag(
    decoder: WindowDecoder,
    packets: Sequence[EncodedPacket],
    pcm: npt.NDArray[np.float32],
    *,
    box: Box,
    sample_rate: int,
    fps: float,
) -> float | None:
    """Lag of the mouth behind the voice in a window, ms (positive: the picture is late), by
    cross-correlating the decoded mouth's openness with the voice's energy per frame; None
    when the window holds too little talk to tell. Runs in a thread."""
    mouth = decoder.mouth_series(packets, box)
    rms = frame_rms(pcm, sample_rate, fps)
    n = min(len(mouth), len(rms))
    if n < 3 * MAX_LAG_FRAMES or float(mouth[:n].std()) == 0 or float(rms[:n].std()) == 0:
        return None
    m = (mouth[:n] - mouth[:n].mean()) / mouth[:n].std()
    a = (rms[:n] - rms[:n].mean()) / rms[:n].std()
    best, best_lag = -np.inf, 0
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        if lag >= 0:
            c = float(np.dot(m[lag:], a[: n - lag])) / (n - lag)
        else:
            c = float(np.dot(m[: n + lag], a[-lag:])) / (n + lag)
        if c > best:
            best, best_lag = c, lag
    return best_lag * 1000.0 / fps if best >= MIN_CORRELATION else None
