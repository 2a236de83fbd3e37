"""The one encoder: programme frames in, H.264 + AAC packets out, shared by every sink.

The codec contexts are not bound to a container, so one encode feeds many muxers (file, RTMP,
recording). Timestamps come from counters only: video pts is the frame number in 1/fps, audio
pts is the sample number in 1/48000. SPS/PPS and the AAC config live in ``headers`` (global
header), which is what a muxer needs besides the packets.
"""

from __future__ import annotations

import math
import threading
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext

from avatarcast.errors import ConfigError, MediaError
from avatarcast.frames import EncodedPacket, ProgrammeFrame, StreamFormat
from avatarcast.output.base import StreamHeaders
from avatarcast.threads import os_thread_named

__all__ = ["AAC_FRAME_SIZE", "Encoder"]

AAC_FRAME_SIZE = 1024
# AVCOL_* values for BT.601 limited range, as the compositor produces (avatarcast/yuv.py).
_SMPTE170M = 6
_RANGE_MPEG = 1
_GLOBAL_HEADER = 1 << 22


class Encoder:
    """libx264 + AAC, zero latency, a keyframe every ``keyint_seconds`` exactly, no B-frames.

    Video is capped CRF: ``crf`` sets the quality and ``video_bitrate`` only caps it (VBV).
    On the programme's mostly still picture, CRF 20 matches the quality the plain 2.5 Mbit/s
    ABR gave (PSNR 60.8 against 61.1 dB on the demo) at 43 % of its bits and 76 % of its x264
    CPU; ``crf=None`` restores ABR at ``video_bitrate``.

    One x264 thread by default: a 720p25 ultrafast encode needs a few ms per frame, and with
    several streams per machine x264's slice threads only add hand-offs and spinning (measured:
    0.12 CPU s per media second with 2 threads in a live stream, 0.065 with one). AAC uses
    FFmpeg's fast coder without noise substitution, half the CPU of the default for speech.

    Not async: it is CPU-heavy and the caller runs it in a worker thread. A lock makes calls
    from different threads safe, one at a time.

    Packets leave in decode-time order across calls, not just within one: AAC lags a frame or
    two behind, so a video packet is held until no audio packet can still come that starts
    before it. A muxer fed in this order never has to buffer to interleave.

    Another frame shape of the same programme (``pipeline.layouts``) has the same sound: with
    ``audio_from`` this encoder encodes only video and takes the audio packets the other
    encoder made for the same frame (it must encode each frame first, in the same thread).
    That saves an AAC encode per extra shape, 0.017 CPU s per media second.
    """

    headers: StreamHeaders

    def __init__(
        self,
        fmt: StreamFormat,
        *,
        preset: str = "ultrafast",
        tune: str = "zerolatency",
        keyint_seconds: int = 2,
        bframes: int = 0,
        video_bitrate: int = 2_500_000,
        crf: float | None = 20.0,
        audio_bitrate: int = 128_000,
        threads: int = 1,
        audio_from: Encoder | None = None,
    ) -> None:
        if fmt.width % 2 or fmt.height % 2:
            raise ConfigError(f"width and height must be even, got {fmt.width}x{fmt.height}")
        if crf is not None and not 0 <= crf <= 51:
            raise ConfigError(f"crf must be within 0..51, got {crf}")
        if keyint_seconds < 1:
            raise ConfigError(f"keyint_seconds must be >= 1, got {keyint_seconds}")
        self.format = fmt
        self._spf = fmt.samples_per_frame
        self._lock = threading.Lock()
        self._video_args: dict[str, Any] = {
            "preset": preset,
            "tune": tune,
            "keyint": keyint_seconds * fmt.fps,
            "bframes": bframes,
            "bitrate": video_bitrate,
            "crf": crf,
            "threads": threads,
        }
        with os_thread_named("x264-worker"):  # libx264's own threads start here and keep the name
            self._video = _open_video(fmt, **self._video_args)
        self._audio_from = audio_from
        self._audio = _open_audio(fmt.sample_rate, audio_bitrate) if audio_from is None else None
        #: the audio packets the last ``encode``/``flush`` call made (before interleaving)
        self.last_audio: list[EncodedPacket] = []
        self._pending = np.zeros(0, np.int16)
        self._samples = 0  # samples handed to the AAC encoder so far
        self._last_pts = -1
        self._held: list[EncodedPacket] = []
        # packet times in integer ticks of 1/lcm(fps, sample rate) s: no Fraction per packet
        vtb, atb = fmt.video_time_base, fmt.audio_time_base
        ticks = math.lcm(vtb.denominator, atb.denominator)
        self._ticks = {
            "video": vtb.numerator * ticks // vtb.denominator,
            "audio": atb.numerator * ticks // atb.denominator,
        }
        self._next_audio: int | None = None  # start of the next audio packet, in ticks
        self._next_video = 0
        self._flushed = False
        #: CPU seconds of the calling thread spent in the video and in the audio encoder
        self.cpu_seconds = {"x264": 0.0, "aac": 0.0}
        if self._audio is not None:
            audio_extradata = self._audio.extradata or b""
            audio_frame_size = self._audio.frame_size or AAC_FRAME_SIZE
        else:
            assert audio_from is not None
            shared = audio_from.headers
            if audio_from.format.audio_time_base != fmt.audio_time_base:
                raise ConfigError(
                    f"shared audio at {audio_from.format.sample_rate} Hz, "
                    f"this encoder at {fmt.sample_rate} Hz"
                )
            audio_extradata, audio_frame_size = shared.audio_extradata, shared.audio_frame_size
        self.headers = StreamHeaders(
            format=fmt,
            video_codec="h264",
            video_extradata=self._video.extradata or b"",
            audio_codec="aac",
            audio_extradata=audio_extradata,
            audio_frame_size=audio_frame_size,
        )

    def close(self) -> None:
        """Nothing to release: the codec contexts go with the object."""

    def restart_video(self) -> None:
        """Reopen x264 (a monitor's remedy for a broken picture): the next frame is an IDR,
        pts go on, and the parameters (so the stream headers) are the same as before."""
        with self._lock, os_thread_named("x264-worker"):
            self._video = _open_video(self.format, **self._video_args)

    def encode(self, frame: ProgrammeFrame) -> list[EncodedPacket]:
        """Encode one programme frame and its audio; returns whatever packets are ready."""
        fmt = self.format
        if frame.yuv.size != fmt.width * fmt.height * 3 // 2:
            raise MediaError(
                f"frame {frame.pts}: yuv has {frame.yuv.size} bytes, "
                f"expected {fmt.width * fmt.height * 3 // 2} for {fmt.width}x{fmt.height}"
            )
        if len(frame.pcm) != self._spf:
            raise MediaError(
                f"frame {frame.pts}: pcm has {len(frame.pcm)} samples, expected {self._spf}"
            )
        with self._lock:
            if self._flushed:
                raise MediaError("encoder already flushed")
            if frame.pts <= self._last_pts:
                raise MediaError(f"frame pts {frame.pts} not after {self._last_pts}")
            if self._last_pts < 0 and frame.pts > 0:
                # a programme that starts later in media time: audio starts at the same instant
                self._samples = frame.pts * self._spf
                self._next_video = frame.pts * self._ticks["video"]
            self._last_pts = frame.pts
            vf = av.VideoFrame.from_numpy_buffer(
                np.ascontiguousarray(frame.yuv).reshape(fmt.height * 3 // 2, fmt.width),
                format="yuv420p",
            )
            vf.pts = frame.pts
            vf.time_base = fmt.video_time_base
            vf.colorspace = vf.color_primaries = vf.color_trc = _SMPTE170M
            vf.color_range = _RANGE_MPEG
            c0 = time.thread_time()
            out = self._wrap(self._video.encode(vf), "video")
            c1 = time.thread_time()
            out += self._audio_for(frame.pcm, final=False)
            self.cpu_seconds["x264"] += c1 - c0
            self.cpu_seconds["aac"] += time.thread_time() - c1
            return self._release(out, final=False)

    def flush(self) -> list[EncodedPacket]:
        """Drain both encoders (the last partial AAC frame included). Call once, at the end."""
        with self._lock:
            if self._flushed:
                return []
            self._flushed = True
            out = self._audio_for(np.zeros(0, np.int16), final=True)
            out += self._wrap(self._video.encode(None), "video")
            return self._release(out, final=True)

    def _release(self, new: list[EncodedPacket], *, final: bool) -> list[EncodedPacket]:
        ticks = self._ticks
        for p in new:
            end = (p.dts + p.duration) * ticks[p.kind]
            if p.kind == "audio":
                self._next_audio = end
            else:
                self._next_video = end
        # by start time, audio first at a tie
        held = sorted(self._held + new, key=lambda p: (p.dts * ticks[p.kind], p.kind != "audio"))
        if final:
            self._held = []
            return held
        if self._next_audio is None:
            self._held = held
            return []
        limit = min(self._next_audio, self._next_video)
        n = sum(1 for p in held if p.dts * ticks[p.kind] < limit)
        self._held = held[n:]
        return held[:n]

    def _audio_for(self, pcm: npt.NDArray[np.int16], *, final: bool) -> list[EncodedPacket]:
        if self._audio_from is not None:
            return list(self._audio_from.last_audio)
        self.last_audio = self._encode_audio(pcm, final=final)
        return self.last_audio

    def _encode_audio(self, pcm: npt.NDArray[np.int16], *, final: bool) -> list[EncodedPacket]:
        self._pending = np.concatenate((self._pending, pcm)) if len(pcm) else self._pending
        packets: list[Packet[Any]] = []
        n = len(self._pending) // AAC_FRAME_SIZE * AAC_FRAME_SIZE
        if final and len(self._pending) > n:
            n = len(self._pending)  # the AAC encoder accepts one short last frame
        assert self._audio is not None
        for start in range(0, n, AAC_FRAME_SIZE):
            chunk = self._pending[start : start + AAC_FRAME_SIZE]
            samples = (chunk.astype(np.float32) / 32768.0).reshape(1, -1)
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate = self.format.sample_rate
            af.pts = self._samples
            af.time_base = self.format.audio_time_base
            self._samples += len(chunk)
            packets += self._audio.encode(af)
        self._pending = self._pending[n:]
        if final:
            packets += self._audio.encode(None)
        return self._wrap(packets, "audio")

    def _wrap(self, packets: list[Packet[Any]], kind: str) -> list[EncodedPacket]:
        tb = self.format.video_time_base if kind == "video" else self.format.audio_time_base
        out: list[EncodedPacket] = []
        for p in packets:
            if p.pts is None:
                raise MediaError(f"{kind} encoder returned a packet without pts")
            pts = int(p.pts)
            dts = int(p.dts) if p.dts is not None else pts
            if p.time_base is not None and p.time_base != tb:
                pts, dts = _rescale(pts, p.time_base, tb), _rescale(dts, p.time_base, tb)
            out.append(
                EncodedPacket(
                    kind="video" if kind == "video" else "audio",
                    data=bytes(p),
                    pts=pts,
                    dts=dts,
                    time_base=tb,
                    keyframe=bool(p.is_keyframe),
                    duration=int(p.duration or (1 if kind == "video" else AAC_FRAME_SIZE)),
                )
            )
        return out


def _open_video(
    fmt: StreamFormat,
    *,
    preset: str,
    tune: str,
    keyint: int,
    bframes: int,
    bitrate: int,
    crf: float | None,
    threads: int,
) -> VideoCodecContext:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = fmt.width, fmt.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = fmt.video_time_base
    ctx.framerate = Fraction(fmt.fps)
    ctx.gop_size = keyint
    ctx.max_b_frames = bframes
    ctx.bit_rate = bitrate
    ctx.thread_count = threads
    ctx.flags |= _GLOBAL_HEADER
    ctx.colorspace = ctx.color_primaries = ctx.color_trc = _SMPTE170M
    ctx.color_range = _RANGE_MPEG
    kbit = bitrate // 1000
    ctx.options = {
        "preset": preset,
        "tune": tune,
        "x264-params": (
            f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes={bframes}"
            f":vbv-maxrate={kbit}:vbv-bufsize={kbit * 2}"
            + (f":crf={crf}" if crf is not None else "")
        ),
    }
    try:
        ctx.open()
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open libx264 ({preset}/{tune}): {exc}") from exc
    if not ctx.extradata:
        raise MediaError("libx264 gave no SPS/PPS in extradata (global header)")
    return ctx


def _open_audio(sample_rate: int, bitrate: int) -> AudioCodecContext:
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate = sample_rate
    ctx.format = "fltp"
    ctx.layout = "mono"
    ctx.bit_rate = bitrate
    ctx.time_base = Fraction(1, sample_rate)
    ctx.flags |= _GLOBAL_HEADER
    ctx.options = {"aac_coder": "fast", "aac_pns": "0"}
    try:
        ctx.open()
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open the AAC encoder at {sample_rate} Hz: {exc}") from exc
    return ctx


def _rescale(value: int, src: Fraction, dst: Fraction) -> int:
    return round(value * src / dst)
