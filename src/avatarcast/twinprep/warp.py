"""A mesh warp of the mouth region: opens the jaw, spreads or rounds the lips.

Used for photo packs (one warped patch per viseme) and by the test-video script (a mouth that
moves with an espeak voice). A backward map: each output pixel samples the source at a
smoothly displaced position; the lower lip and chin move down by ``jaw`` pixels, the upper lip
up by a quarter of that, fading out across the cheeks and below the chin; the gap between the
lips shows a dark mouth interior with soft edges.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.ndimage import map_coordinates

__all__ = ["SHAPES", "mouth_warp"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: per viseme: (jaw drop as a share of the mouth's width, lip spread: + wider, - rounder)
SHAPES: dict[str, tuple[float, float]] = {
    "rest": (0.0, 0.0),
    "MBP": (0.0, -0.02),
    "FV": (0.06, 0.02),
    "TH": (0.10, 0.02),
    "DNL": (0.12, 0.02),
    "KG": (0.15, 0.0),
    "SZ": (0.05, 0.10),
    "CHJ": (0.10, -0.14),
    "R": (0.14, -0.08),
    "AA": (0.45, 0.02),
    "E": (0.28, 0.10),
    "I": (0.18, 0.14),
    "O": (0.32, -0.16),
    "U": (0.16, -0.22),
}


def mouth_warp(rgb: U8, landmarks: F32, *, jaw: float, spread: float = 0.0) -> U8:
    """``rgb`` with the mouth of its 68 ``landmarks`` opened by ``jaw`` pixels and its lips
    ``spread`` (a share of the mouth's width). Only a box around the mouth and chin changes."""
    if jaw <= 0.05 and abs(spread) < 1e-3:
        return rgb
    lm = landmarks
    cx = float(lm[60:68, 0].mean())
    cy = float(lm[60:68, 1].mean())
    half_w = max(2.0, float(lm[54, 0] - lm[48, 0]) / 2)
    chin = float(lm[8, 1])
    nose = float(lm[33, 1])
    below = max(4.0, chin - cy)
    h, w = rgb.shape[:2]
    x0, x1 = int(max(0, cx - 2.6 * half_w)), int(min(w, cx + 2.6 * half_w))
    y0, y1 = int(max(0, nose)), int(min(h, chin + 0.8 * below + jaw))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return rgb
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    across = np.exp(-(((xx - cx) / (1.7 * half_w)) ** 2))
    # between the mouth corners the lips part (a step at the mouth line); outside them the
    # cheeks stretch smoothly over a band, so nothing tears
    lips = np.clip((half_w * 0.95 - np.abs(xx - cx)) / (0.25 * half_w), 0.0, 1.0)
    band = 0.45 * below
    smooth = np.clip((yy - (cy - band)) / (2 * band), 0.0, 1.0)
    smooth = smooth * smooth * (3 - 2 * smooth)
    step = (yy >= cy).astype(np.float32)
    fall = np.clip(1.0 - (yy - chin) / (0.8 * below + jaw), 0.0, 1.0)
    down = (lips * step + (1.0 - lips) * smooth) * fall
    up = np.where(yy < cy, np.exp(-(((cy - yy) / max(2.0, 0.5 * (cy - nose))) ** 2)), 0.0)
    dy = jaw * across * (down - 0.25 * up * lips)
    lip_band = np.exp(-(((yy - cy) / (0.9 * below)) ** 2))
    dx = spread * (xx - cx) * lip_band * np.exp(-(((xx - cx) / (2.2 * half_w)) ** 2))
    dx = dx * np.clip((yy - nose) / max(2.0, 0.5 * (cy - nose)), 0.0, 1.0)
    src_y = yy - dy
    src_x = xx - dx
    out = rgb.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    for ch in range(3):
        region[..., ch] = map_coordinates(
            rgb[..., ch].astype(np.float32), [src_y, src_x], order=1, mode="nearest"
        )
    # the gap between the lips: where the output samples across the mouth line
    gap = (src_y < cy) & (yy >= cy - 0.25 * jaw * across) & (down > 0.5)
    lip_w = half_w * (1.0 + spread) * 0.92
    inside = np.clip(1.0 - np.abs(xx - cx) / lip_w, 0.0, 1.0) ** 0.5
    a = np.where(gap, inside * lips, 0.0) * min(1.0, jaw / 3.0)
    dark = np.array([70.0, 28.0, 32.0], np.float32)
    mixed = region * (1.0 - a[..., None]) + dark * a[..., None]
    out[y0:y1, x0:x1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out
