"""The mouth box, the feathered mouth/jaw mask and the per-viseme patches.

Geometry comes from dlib's 68 landmarks: jaw 0-16, nose 27-35, lips 48-67. The mouth box is a
square 0.8 face-widths wide centred a little below the lips, so it holds the chin even with the
jaw dropped; its crop resized to the canonical size is the space engines work in. The mask
covers the lips, chin and jaw below the nose, feathered so it reaches zero well inside the box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from avatarcast.avatar.visemes import OPENNESS, VISEMES

__all__ = [
    "box_for",
    "cut",
    "face_width",
    "fill_missing",
    "make_mask",
    "opening",
    "pick_frames",
    "pick_transitions",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
BOX_SIDE = 0.8  # mouth box side, in face widths (jaw point 0 to 16)
BOX_DROP = 0.14  # the box centre sits this far below the lips' centre, in face widths
MAX_SIZE = 192  # canonical crops are at most this many pixels across


def face_width(lm: F32) -> float:
    return float(np.hypot(*(lm[16] - lm[0])))


def opening(lm: F32) -> float:
    """The inner lips' gap over the face width (0 closed)."""
    gap = float(np.mean(lm[[65, 66, 67], 1] - lm[[63, 62, 61], 1]))
    return max(0.0, gap) / max(1.0, face_width(lm))


def box_for(lm: F32, side: float) -> tuple[int, int, int, int]:
    cx = float(lm[48:68, 0].mean())
    cy = float(lm[48:68, 1].mean()) + BOX_DROP * face_width(lm)
    s = round(side)
    return round(cx - s / 2), round(cy - s / 2), s, s


def canonical_size(side: int) -> int:
    return int(min(MAX_SIZE, side) // 2 * 2)


def cut(rgb: U8, box: tuple[int, int, int, int], size: int) -> U8:
    """The box's pixels (edges repeated outside the image) resized to ``size`` square."""
    x, y, w, h = box
    hh, ww = rgb.shape[:2]
    ys = np.clip(np.arange(y, y + h), 0, hh - 1)
    xs = np.clip(np.arange(x, x + w), 0, ww - 1)
    crop = Image.fromarray(np.ascontiguousarray(rgb[ys][:, xs]))
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS), np.uint8)


def make_mask(lm: F32, box: tuple[int, int, int, int], size: int) -> U8:
    """The feathered mouth/jaw mask in canonical space, for the landmarks ``lm`` of a frame
    whose mouth box is ``box``."""
    x, y, side, _ = box
    k = size / side
    fw = face_width(lm)
    pts: list[tuple[float, float]] = []
    for i in (31, 32, 33, 34, 35):
        pts.append((lm[i, 0], lm[i, 1] + 0.04 * fw))
    for i in range(13, 2, -1):  # the jaw line, right to left, let down for an open jaw
        pts.append((lm[i, 0] + (lm[8, 0] - lm[i, 0]) * 0.08, lm[i, 1] + 0.09 * fw))
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([((px - x) * k, (py - y) * k) for px, py in pts], fill=255)
    feather = max(2.0, 0.06 * size)
    shrunk = canvas.filter(ImageFilter.MinFilter(_odd(feather)))
    soft = np.asarray(shrunk.filter(ImageFilter.GaussianBlur(feather)), np.float32)
    edge = np.minimum.reduce(
        [
            np.arange(size)[None, :] * np.ones((size, 1)),
            np.arange(size)[::-1][None, :] * np.ones((size, 1)),
        ]
    )
    taper = np.clip(np.minimum(edge, edge.T) / (0.08 * size), 0.0, 1.0)
    mask: U8 = np.clip(np.rint(soft * taper), 0, 255).astype(np.uint8)
    return mask


def _odd(v: float) -> int:
    n = max(3, int(v))
    return n if n % 2 else n + 1


def pick_frames(
    visemes: Sequence[str], cover: Sequence[float], openings: Sequence[float]
) -> dict[str, int]:
    """For each viseme the recording shows clearly, the frame to cut its patch from: well
    inside one phoneme, with the median opening of its instances (MBP: the most closed)."""
    found: dict[str, list[int]] = {}
    for f, (v, c) in enumerate(zip(visemes, cover, strict=True)):
        if v != "rest" and c >= 0.8:
            found.setdefault(v, []).append(f)
    out: dict[str, int] = {}
    for v, frames in found.items():
        ranked = sorted(frames, key=lambda f: openings[f])
        out[v] = ranked[0] if v == "MBP" else ranked[len(ranked) // 2]
    return out


def pick_transitions(
    visemes: Sequence[str], cover: Sequence[float], openings: Sequence[float]
) -> dict[tuple[str, str], int]:
    """For each change of viseme A to B that the recording shows between two clear frames
    (A's last, cover >= 0.5, and the next frame's B), the first frame of B: the mouth
    on its way from one shape to the other. Of several, the one whose opening lies nearest
    the middle of the two frames' around it (a mid-way shape, not a stray one)."""
    found: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for f in range(1, len(visemes) - 1):
        a, b = visemes[f - 1], visemes[f]
        if a == b or "rest" in (a, b) or cover[f - 1] < 0.5 or visemes[f + 1] != b:
            continue
        mid = 0.5 * (openings[f - 1] + openings[f + 1])
        found.setdefault((a, b), []).append((abs(openings[f] - mid), f))
    return {pair: min(cands)[1] for pair, cands in found.items()}


def fill_missing(
    patches: Mapping[str, U8], openness: Mapping[str, float]
) -> tuple[dict[str, U8], dict[str, float]]:
    """Every viseme gets a patch: one the recording lacks borrows the nearest in openness."""
    have = [v for v in patches if v != "rest"]
    out, opens = dict(patches), dict(openness)
    for v in VISEMES:
        if v in out:
            continue
        near = min(have, key=lambda h: abs(OPENNESS[h] - OPENNESS[v])) if have else "rest"
        out[v], opens[v] = out[near], opens.get(near, 0.0)
    return out, opens
