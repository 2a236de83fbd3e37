"""The generated mouth models and voice (scripts/make_mouth_models.py), made once per session,
and a test base: scikit-image's astronaut photograph (NASA, public domain) as a still face."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_mouth_models.py"
FACE_BOX = (170, 40, 150, 180)  # the astronaut's face in the 512x512 photograph


def make_models(out: Path) -> Path:
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, timeout=120)
    return out


def astronaut() -> npt.NDArray[np.uint8]:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def talking_pcm(seconds: float, *, seed: int = 0) -> npt.NDArray[np.int16]:
    """48 kHz speech-like audio: a 150 Hz buzz with harmonics, syllables 4 a second and silent
    gaps, so mel windows differ from frame to frame."""
    t = np.arange(int(48_000 * seconds)) / 48_000
    rng = np.random.default_rng(seed)
    buzz = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None)
    return (6000 * buzz * syllables).astype(np.int16)
