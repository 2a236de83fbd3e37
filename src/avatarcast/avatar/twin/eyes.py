"""Eyelids for a twin made from one photo: the eyes close on the animator's blink schedule.

A recorded loop blinks on its own; a photo's loop would stare. When the animator's ``blink``
(0 open .. 1 closed, seeded, every 2-6 s) is above zero, each eye region is warped in the
placed view frame: the skin band above the eye is stretched down to a lid line that falls
from the upper lid (open) to the lower lid (closed), with a soft dark lash line at its edge,
and the warp fades out towards the eye corners. Frames without a blink are left untouched, so
the eyes change only while the animator blinks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from avatarcast.yuv import YuvFrame

__all__ = ["EyeLids"]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]

SKIN_BAND = 1.1
"""The skin stretched over the eye: this many eye heights above the upper lid."""
LASH_DARK = 0.45
"""How much the lash line darkens luma at its centre, fully closed."""
MIN_BLINK = 0.02


class EyeLids:
    """Both eyes of a twin, placed in one view: ``eyes`` are (x, y, w, h) of each eye's
    contour in view pixels at loop frame 0; ``offsets`` per loop frame, in view pixels."""

    def __init__(
        self,
        eyes: Sequence[tuple[float, float, float, float]],
        offsets: Sequence[tuple[float, float]],
        size: tuple[int, int],
    ) -> None:
        self._eyes = list(eyes)
        self._offsets = list(offsets)
        self._size = size

    def draw(self, frame: YuvFrame, n: int, blink: float) -> None:
        if blink < MIN_BLINK or not self._offsets:
            return
        dx, dy = self._offsets[n % len(self._offsets)]
        b = min(1.0, blink)
        for x, y, w, h in self._eyes:
            box = (x + dx, y + dy, w, h)
            _lid(frame.y, box, b, 1, lash=True)
            _lid(frame.u, box, b, 2, lash=False)
            _lid(frame.v, box, b, 2, lash=False)


def _lid(
    plane: U8, box: tuple[float, float, float, float], b: float, k: int, *, lash: bool
) -> None:
    """Warp one plane (``k`` 2 for chroma at half size) for blink level ``b`` in place."""
    x, y, w, h = (v / k for v in box)
    h = max(h, 0.3 * w)
    band = SKIN_BAND * h
    x0, x1 = int(np.floor(x - 0.2 * w)), int(np.ceil(x + 1.2 * w))
    y0, y1 = int(np.floor(y - band)), int(np.ceil(y + h + 1))
    ph, pw = plane.shape
    if x0 < 0 or y0 < 0 or x1 > pw or y1 > ph or x1 - x0 < 2 or y1 - y0 < 2:
        return  # the eye is outside this view (a tight crop)
    region = plane[y0:y1, x0:x1].astype(np.float32)
    top, lid = y - y0, y - y0 + b * h  # in region rows
    rows = np.arange(y1 - y0, dtype=np.float32)
    src = np.where(rows < lid, rows * top / max(lid, 1e-3), rows)
    lo = np.clip(np.floor(src).astype(int), 0, len(rows) - 1)
    hi = np.clip(lo + 1, 0, len(rows) - 1)
    t = (src - lo)[:, None]
    warped = region[lo] * (1.0 - t) + region[hi] * t
    if lash:
        shade = 1.0 - LASH_DARK * b * np.exp(-(((rows - lid) / max(1.0, 0.08 * h * 3)) ** 2))
        warped *= np.where(rows <= lid + 2 * h, shade, 1.0)[:, None]
    cols = np.arange(x1 - x0, dtype=np.float32) + x0
    cx, half = x + w / 2, 0.6 * w
    across = np.clip(1.4 * (1.0 - ((cols - cx) / half) ** 2), 0.0, 1.0)
    weight = (across * across * (3.0 - 2.0 * across))[None, :]
    out = region + (warped - region) * weight
    plane[y0:y1, x0:x1] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
