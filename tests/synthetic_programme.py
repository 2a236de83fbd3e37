"""Synthetic programme frames for media tests: a moving luma/chroma gradient and a sine tone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avatarcast.frames import ProgrammeFrame, StreamFormat

TONE_HZ = 440.0


def frames(fmt: StreamFormat, seconds: float, *, start: int = 0) -> Iterator[ProgrammeFrame]:
    w, h, spf = fmt.width, fmt.height, fmt.samples_per_frame
    xx = np.arange(w, dtype=np.int32)[None, :]
    yy = np.arange(h, dtype=np.int32)[:, None]
    cx = np.arange(w // 2, dtype=np.int32)[None, :]
    cy = np.arange(h // 2, dtype=np.int32)[:, None]
    for pts in range(start, start + round(seconds * fmt.fps)):
        y = (16 + (xx + yy // 2 + 6 * pts) % 220).astype(np.uint8)
        u = np.broadcast_to((64 + (cx // 5 + 2 * pts) % 128).astype(np.uint8), (h // 2, w // 2))
        v = np.broadcast_to((64 + (cy // 3 + pts) % 128).astype(np.uint8), (h // 2, w // 2))
        yuv = np.concatenate((y.ravel(), u.ravel(), v.ravel()))
        t = (np.arange(spf) + pts * spf) / fmt.sample_rate
        pcm = (np.sin(2 * np.pi * TONE_HZ * t) * 8000).astype(np.int16)
        yield ProgrammeFrame(pts=pts, yuv=yuv, pcm=pcm)


def ffprobe(target: str | Path, *args: str, timeout: float = 30) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(target)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)
