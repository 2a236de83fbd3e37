"""Head pose between two frames, for cutting mouth patches that fit the idle loop's face.

A patch is cut from a frame where the host may have turned or tilted the head a little, or
leant towards the camera, since the loop frame it will be pasted into. The similarity transform
(rotation in the picture plane, uniform scale, shift) that best carries the patch frame's
landmarks onto the loop's, by least squares over the points speech does not move (the upper
jaw line, the nose, the eye corners), undoes that: the patch is cut through it from the loop's
mouth box, so the jaw and cheeks in it lie where the loop frame has them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.twinprep.mouth import cut

__all__ = ["STABLE", "cut_posed", "similarity"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
STABLE = (0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
"""dlib's 68 points that the mouth does not move: jaw ends, nose, eye corners (not lids)."""
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def similarity(src: F32, dst: F32) -> F64:
    """The 2x3 matrix of the similarity that best maps ``src``'s stable landmarks onto
    ``dst``'s (least squares; no shear, no mirror)."""
    a = src[list(STABLE)].astype(np.float64)
    b = dst[list(STABLE)].astype(np.float64)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    za = (a[:, 0] - ma[0]) + 1j * (a[:, 1] - ma[1])
    zb = (b[:, 0] - mb[0]) + 1j * (b[:, 1] - mb[1])
    z = complex(np.vdot(za, zb) / max(float(np.vdot(za, za).real), 1e-9))
    rot = np.array([[z.real, -z.imag], [z.imag, z.real]])
    out: F64 = np.hstack([rot, (mb - rot @ ma)[:, None]])
    return out


def cut_posed(rgb: U8, to_ref: F64, box: tuple[int, int, int, int], size: int) -> U8:
    """The reference frame's ``box`` as ``rgb`` shows it, ``to_ref`` carrying ``rgb``'s
    coordinates onto the reference's; resized to ``size`` square (edges repeated outside
    the image). With the identity this is :func:`~avatarcast.twinprep.mouth.cut`."""
    if np.allclose(to_ref, _IDENTITY, rtol=0.0, atol=1e-9):
        return cut(rgb, box, size)
    x, y, w, h = box
    inv = np.linalg.inv(np.vstack([to_ref, [0.0, 0.0, 1.0]]))[:2]
    corners = np.array([[x, y, 1.0], [x + w, y, 1.0], [x, y + h, 1.0], [x + w, y + h, 1.0]])
    src = corners @ inv.T
    x0, y0 = (int(np.floor(v)) - 3 for v in src.min(axis=0))
    x1, y1 = (int(np.ceil(v)) + 3 for v in src.max(axis=0))
    hh, ww = rgb.shape[:2]
    ys = np.clip(np.arange(y0, y1), 0, hh - 1)
    xs = np.clip(np.arange(x0, x1), 0, ww - 1)
    region = Image.fromarray(np.ascontiguousarray(rgb[ys][:, xs]))
    # output pixel (u, v) of the w x h box shows reference point (x + u, y + v)
    a, b, c = inv[0]
    d, e, f = inv[1]
    data = (a, b, a * x + b * y + c - x0, d, e, d * x + e * y + f - y0)
    level = region.transform((w, h), Image.Transform.AFFINE, data, Image.Resampling.BICUBIC)
    return np.asarray(level.resize((size, size), Image.Resampling.LANCZOS), np.uint8)
