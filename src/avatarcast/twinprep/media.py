"""Read a recording (frames and audio) and write the idle loop, with PyAV."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from avatarcast.errors import ConfigError

__all__ = ["VideoInfo", "frames", "probe", "read_audio", "write_loop"]

U8 = npt.NDArray[np.uint8]
AUDIO_RATE = 16_000


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    fps: int
    frames: int
    has_audio: bool


def probe(path: Path) -> VideoInfo:
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ConfigError(f"{path}: has no video stream", field="video")
            vs = c.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate
            fps = round(float(rate)) if rate else 0
            n = vs.frames or 0
            if n == 0 and c.duration:
                n = round(c.duration / 1_000_000 * fps)
            return VideoInfo(vs.width, vs.height, fps, n, bool(c.streams.audio))
    except av.FFmpegError as e:
        raise ConfigError(f"{path}: cannot read it as a video: {e}", field="video") from e


def frames(path: Path, *, start: int = 0, stop: int | None = None) -> Iterator[U8]:
    """Frames ``start`` to ``stop`` (in decoding order) as RGB (h, w, 3), cropped to even width
    and height. Frames before ``start`` are decoded but not converted: the same frames in the
    same order as reading from the beginning, whatever the file's timestamps say."""
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for i, f in enumerate(c.decode(stream)):
                if stop is not None and i >= stop:
                    break
                if i < start:
                    continue
                rgb = f.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                yield np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])
    except av.FFmpegError as e:
        raise ConfigError(f"{path}: cannot decode: {e}", field="video") from e


def read_audio(path: Path) -> npt.NDArray[np.float32]:
    """The recording's sound as mono float32 at 16 kHz (empty without an audio stream)."""
    out: list[npt.NDArray[Any]] = []
    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return np.zeros(0, np.float32)
            res = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
            for f in c.decode(c.streams.audio[0]):
                for r in res.resample(f):
                    out.append(r.to_ndarray().reshape(-1))
            for r in res.resample(None):
                out.append(r.to_ndarray().reshape(-1))
    except av.FFmpegError as e:
        raise ConfigError(f"{path}: cannot decode its audio: {e}", field="video") from e
    if not out:
        return np.zeros(0, np.float32)
    return np.concatenate(out).astype(np.float32) / 32768.0


def write_loop(path: Path, loop: Sequence[U8], fps: int) -> None:
    """The idle loop as near-lossless H.264 (yuv420p, one thread: the same bytes every time)."""
    h, w = loop[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = Fraction(1, fps)
        s.options = {"crf": "10", "preset": "veryfast", "threads": "1"}
        s.codec_context.thread_count = 1
        for i, rgb in enumerate(loop):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
