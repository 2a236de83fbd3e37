"""Composition in yuv420p, so no frame is converted from RGB at run time.

Static layers (background, label, card, avatar sprites) are converted once into ``Sprite``s:
Y/U/V planes plus alpha at full and half resolution. A frame is a copy of the cached background
and a few small alpha blends. BT.601 limited range; the encoder tags the stream the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]


def rgb_to_yuv_planes(rgb: U8) -> tuple[U8, U8, U8]:
    """RGB (h, w, 3) uint8, even h and w, to BT.601 limited-range Y, U, V (U, V at half size)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"width and height must be even, got {w}x{h}")
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def q(a: npt.NDArray[np.float32]) -> U8:
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    return q(y), q(u), q(v)


@dataclass(frozen=True, slots=True)
class Sprite:
    """A pre-converted RGBA image: YUV planes and alpha (0..255) at luma and chroma size."""

    y: U8
    u: U8
    v: U8
    a: U8  # (h, w)
    a2: U8  # (h/2, w/2)
    opaque: bool

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def from_rgba(cls, rgba: U8) -> Sprite:
        if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
            raise ValueError(f"expected an (h, w, 3|4) image, got shape {rgba.shape}")
        h, w = rgba.shape[:2]
        if h % 2 or w % 2:
            pad = np.zeros((h + h % 2, w + w % 2, rgba.shape[2]), np.uint8)
            pad[:h, :w] = rgba
            rgba, h, w = pad, h + h % 2, w + w % 2
        alpha = rgba[..., 3] if rgba.shape[2] == 4 else np.full((h, w), 255, np.uint8)
        y, u, v = rgb_to_yuv_planes(np.ascontiguousarray(rgba[..., :3]))
        a2 = alpha.reshape(h // 2, 2, w // 2, 2).astype(np.uint16).sum(axis=(1, 3)) // 4
        return cls(y, u, v, alpha.copy(), a2.astype(np.uint8), bool((alpha == 255).all()))


class YuvFrame:
    """A yuv420p frame in one contiguous buffer, with plane views."""

    __slots__ = ("buf", "height", "u", "v", "width", "y")

    def __init__(self, width: int, height: int, buf: U8 | None = None) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"width and height must be even, got {width}x{height}")
        self.width, self.height = width, height
        n = width * height
        self.buf = np.zeros(n * 3 // 2, np.uint8) if buf is None else buf
        if self.buf.shape != (n * 3 // 2,):
            raise ValueError(f"buffer has {self.buf.size} bytes, expected {n * 3 // 2}")
        self.y = self.buf[:n].reshape(height, width)
        self.u = self.buf[n : n + n // 4].reshape(height // 2, width // 2)
        self.v = self.buf[n + n // 4 :].reshape(height // 2, width // 2)

    def copy(self) -> YuvFrame:
        return YuvFrame(self.width, self.height, self.buf.copy())

    def blit(self, sprite: Sprite, x: int, y: int) -> None:
        """Alpha-blend ``sprite`` with its top-left at (x, y); x and y are rounded to even."""
        x -= x % 2
        y -= y % 2
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + sprite.width, self.width), min(y + sprite.height, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        sx, sy = x0 - x, y0 - y
        h, w = y1 - y0, x1 - x0
        _blend(
            self.y[y0:y1, x0:x1],
            sprite.y[sy : sy + h, sx : sx + w],
            sprite.a[sy : sy + h, sx : sx + w],
            sprite.opaque,
        )
        cy0, cx0, ch, cw, csy, csx = y0 // 2, x0 // 2, h // 2, w // 2, sy // 2, sx // 2
        a2 = sprite.a2[csy : csy + ch, csx : csx + cw]
        _blend(
            self.u[cy0 : cy0 + ch, cx0 : cx0 + cw],
            sprite.u[csy : csy + ch, csx : csx + cw],
            a2,
            sprite.opaque,
        )
        _blend(
            self.v[cy0 : cy0 + ch, cx0 : cx0 + cw],
            sprite.v[csy : csy + ch, csx : csx + cw],
            a2,
            sprite.opaque,
        )


def _blend(dst: U8, src: U8, alpha: U8, opaque: bool) -> None:
    if opaque:
        dst[...] = src
        return
    a = alpha.astype(np.uint16)
    out = (src.astype(np.uint16) * a + dst.astype(np.uint16) * (255 - a) + 127) // 255
    dst[...] = out.astype(np.uint8)


class Blend:
    """A translucent sprite at a fixed place, with its blend terms precomputed in integers.

    ``out = (src * a + dst * (256 - a) + 128) >> 8`` with ``a`` mapped to 0..256, so a frame
    costs one multiply, one add and one shift per plane, in preallocated buffers.
    """

    __slots__ = ("h", "inv_c", "inv_y", "pre_u", "pre_v", "pre_y", "tmp_c", "tmp_y", "w", "x", "y")

    def __init__(self, sprite: Sprite, x: int, y: int) -> None:
        self.x, self.y, self.w, self.h = x, y, sprite.width, sprite.height
        a = _alpha256(sprite.a)
        a2 = _alpha256(sprite.a2)
        self.pre_y = sprite.y.astype(np.uint16) * a + 128
        self.pre_u = sprite.u.astype(np.uint16) * a2 + 128
        self.pre_v = sprite.v.astype(np.uint16) * a2 + 128
        self.inv_y = (256 - a).astype(np.uint16)
        self.inv_c = (256 - a2).astype(np.uint16)
        self.tmp_y = np.empty_like(self.pre_y)
        self.tmp_c = np.empty_like(self.pre_u)

    def draw(self, out: YuvFrame) -> None:
        x, y, w, h = self.x, self.y, self.w, self.h
        _blend_plane(out.y[y : y + h, x : x + w], self.pre_y, self.inv_y, self.tmp_y)
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        _blend_plane(out.u[cy : cy + ch, cx : cx + cw], self.pre_u, self.inv_c, self.tmp_c)
        _blend_plane(out.v[cy : cy + ch, cx : cx + cw], self.pre_v, self.inv_c, self.tmp_c)


def _alpha256(a: npt.NDArray[np.uint8]) -> U16:
    a16 = a.astype(np.uint16)
    return a16 + (a16 >> 7)


def _blend_plane(dst: npt.NDArray[np.uint8], pre: U16, inv: U16, tmp: U16) -> None:
    np.multiply(dst, inv, out=tmp)
    tmp += pre
    tmp >>= 8
    dst[...] = tmp
