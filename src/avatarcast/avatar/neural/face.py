"""Where a neural mouth goes: the face crop the model sees and the feathered patch it returns.

The model is fed one reference crop of the face with the mouth closed (the pack's neutral
frame), not each frame of the idle loop. That makes a crop depend only on the audio, so crops
can be rendered seconds before their chunk airs, before anyone knows at which frame it starts;
the renderer pastes each at the face box of the frame it lands in (plus the head offset). The
price: a loop with large head turns would need per-frame crops (a later change); the packs'
loops sway by a few pixels, which the offset follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.errors import ConfigError
from avatarcast.yuv import Sprite

__all__ = ["FaceRef", "canonical_mouth", "face_ref", "mouth_sprite"]

U8 = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceRef:
    """The neutral face: ``crop`` (s, s, 3) RGB as the model sees it, the frame ``box`` it came
    from (even x, y, w, h) and the paste ``alpha`` (h, w), 255 over the lower face, feathered
    to 0 at its edges so no seam shows."""

    crop: U8
    box: Box
    alpha: U8
    #: the mouth box inside ``box`` (face-box pixels) and the size its crops are returned at,
    #: for renderers that blend a canonical mouth (the twin's); None: whole-crop pastes only
    mouth: Box | None = None
    mouth_size: tuple[int, int] | None = None


def _resize(rgb: U8, w: int, h: int) -> U8:
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return rgb
    img = Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _feathered(w: int, h: int, top: float, feather: float) -> U8:
    """1 inside the lower face (below ``top`` of the box, inset from the sides), smoothly 0 at
    the box's edges: a raised-cosine ramp ``feather`` of the box wide."""
    fy = max(1.0, feather * h)
    fx = max(1.0, feather * w)
    ys = np.arange(h, dtype=np.float32) + 0.5
    xs = np.arange(w, dtype=np.float32) + 0.5
    y0 = top * h
    ry = np.clip(np.minimum((ys - y0) / fy, (h - ys) / fy), 0.0, 1.0)
    rx = np.clip(np.minimum(xs / fx, (w - xs) / fx), 0.0, 1.0)
    ramp = np.outer(0.5 - 0.5 * np.cos(np.pi * ry), 0.5 - 0.5 * np.cos(np.pi * rx))
    return np.asarray(np.rint(255 * ramp), dtype=np.uint8)


def face_ref(
    frame_rgb: U8,
    box: Box,
    crop_size: int,
    *,
    mask_top: float = 0.5,
    feather: float = 0.12,
    mouth_box: Box | None = None,
    mouth_size: tuple[int, int] | None = None,
) -> FaceRef:
    """The reference for a face at ``box`` (x, y, w, h) in ``frame_rgb``; ``mouth_box`` (frame
    pixels, inside ``box``) and ``mouth_size`` ask for canonical mouth crops too."""
    x, y, w, h = box
    fh, fw = frame_rgb.shape[:2]
    if min(w, h) < 16 or x < 0 or y < 0 or x + w > fw or y + h > fh:
        raise ConfigError(f"face box {box} does not fit a {fw}x{fh} frame")
    x, y, w, h = x - x % 2, y - y % 2, w - w % 2, h - h % 2
    crop = _resize(np.ascontiguousarray(frame_rgb[y : y + h, x : x + w, :3]), crop_size, crop_size)
    mouth = None
    if mouth_box is not None:
        mx, my, mw, mh = mouth_box
        if mx < x or my < y or mx + mw > x + w or my + mh > y + h or min(mw, mh) < 4:
            raise ConfigError(f"mouth box {mouth_box} is not inside the face box {(x, y, w, h)}")
        mouth = (mx - x, my - y, mw, mh)
    return FaceRef(
        crop=crop,
        box=(x, y, w, h),
        alpha=_feathered(w, h, mask_top, feather),
        mouth=mouth,
        mouth_size=mouth_size,
    )


def canonical_mouth(ref: FaceRef, out: U8) -> U8 | None:
    """The mouth box of the model's (s, s, 3) output, resized to ``ref.mouth_size``."""
    if ref.mouth is None or ref.mouth_size is None:
        return None
    s = out.shape[0]
    _, _, w, h = ref.box
    mx, my, mw, mh = ref.mouth
    x0, y0 = round(mx * s / w), round(my * s / h)
    x1, y1 = max(x0 + 1, round((mx + mw) * s / w)), max(y0 + 1, round((my + mh) * s / h))
    return _resize(np.ascontiguousarray(out[y0:y1, x0:x1]), *ref.mouth_size)


def mouth_sprite(ref: FaceRef, mouth: U8) -> Sprite:
    """The model's (s, s, 3) output as a sprite the size of the face box, alpha from ``ref``."""
    _, _, w, h = ref.box
    rgb = _resize(mouth, w, h)
    return Sprite.from_rgba(np.dstack([rgb, ref.alpha]))
