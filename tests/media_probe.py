"""ffprobe and PyAV helpers for tests: measure outputs, never trust the pipeline's own word."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from avatarcast.health import luma_plane
from avatarcast.yuv import YuvFrame


def ffprobe(target: str | Path, *, extra: list[str] | None = None, timeout: float = 30) -> Any:
    exe = shutil.which("ffprobe")
    if exe is None:
        raise RuntimeError("ffprobe is required for the tests: apt-get install ffmpeg")
    cmd = [exe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format"]
    cmd += (extra or []) + [str(target)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(out.stdout)


def stream_of(info: Any, kind: str) -> dict[str, Any]:
    for s in info["streams"]:
        if s["codec_type"] == kind:
            return dict(s)
    raise AssertionError(f"no {kind} stream in {info}")


def rate(s: dict[str, Any]) -> float:
    return float(Fraction(s["avg_frame_rate"]))


def decoded_digest(path: Path) -> tuple[str, str, int]:
    """Hashes of every decoded video frame and audio sample, and the frame count."""
    vh, ah = hashlib.sha256(), hashlib.sha256()
    n = 0
    with av.open(str(path)) as c:
        for frame in c.decode(*c.streams):
            if isinstance(frame, av.VideoFrame):
                vh.update(frame.to_ndarray().tobytes())
                n += 1
            else:
                ah.update(np.asarray(frame.to_ndarray()).tobytes())
    return vh.hexdigest(), ah.hexdigest(), n


def decoded_luma(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [luma_plane(f) for f in c.decode(video=0)]


def decoded_rgb_frame(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                return f.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame {index}")


def encode_yuv(out: Path, frames: Iterable[YuvFrame], width: int, height: int) -> None:
    """Drawn frames to a near-lossless H.264 file at 25 fps (crf 12), to measure them decoded."""
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "12", "preset": "ultrafast", "threads": "1"}
        for f in frames:
            vf = av.VideoFrame(width, height, "yuv420p")
            for plane, data in zip(vf.planes, (f.y, f.u, f.v), strict=True):
                plane.update(np.ascontiguousarray(data))
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
