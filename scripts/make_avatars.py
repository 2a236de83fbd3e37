#!/usr/bin/env python3
"""Draw the avatar packs in ``assets/avatars/`` from code: Pillow shapes and numpy shading.

No image comes from elsewhere. Each layer is drawn at 2x and box-downsampled (anti-aliasing),
cropped to its content on even coordinates (yuv420 chroma alignment) and saved as a PNG without
metadata, so every run gives byte-identical files. Usage::

    python scripts/make_avatars.py            # writes assets/avatars/<name>/
    python scripts/make_avatars.py --out DIR  # somewhere else (the tests use a temp dir)
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from avatarcast.avatar.visemes import OPENNESS

S = 2  # supersampling factor
W, H = 440, 560  # the avatar box at 1x, designed for a 1280x720 frame
HB = H + 8  # the body runs below the box so breathing never shows its bottom edge
CX = W // 2
ORIGIN = (250, 160)  # avatar box top-left in the 1280x720 frame: centre-left layout
VERSION = 1

Pt = tuple[float, float]
Arr = np.ndarray[Any, Any]

_YY, _XX = np.mgrid[0 : HB * S, 0 : W * S].astype(np.float32)
YY, XX = (_YY + 0.5) / S, (_XX + 0.5) / S  # pixel centres in 1x units


# --- geometry -----------------------------------------------------------------------------------


def bez(p0: Pt, p1: Pt, p2: Pt, p3: Pt, n: int = 24) -> list[Pt]:
    """Points of a cubic Bézier curve (end points included)."""
    out = []
    for i in range(n + 1):
        t = i / n
        u = 1 - t
        x = u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0]
        y = u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1]
        out.append((x, y))
    return out


def mirror(points: list[Pt], cx: float = CX) -> list[Pt]:
    return [(2 * cx - x, y) for x, y in points]


def symmetric(right: list[Pt]) -> list[Pt]:
    """A closed outline from its right half drawn top to bottom."""
    return right + mirror(right)[::-1]


def _img() -> Image.Image:
    return Image.new("L", (W * S, HB * S), 0)


def _mask(img: Image.Image, blur: float) -> Arr:
    box = img.getbbox()
    if blur > 0 and box is not None:
        pad = math.ceil(blur * S * 3) + 2
        x0, y0 = max(box[0] - pad, 0), max(box[1] - pad, 0)
        x1, y1 = min(box[2] + pad, img.width), min(box[3] + pad, img.height)
        part = img.crop((x0, y0, x1, y1)).filter(ImageFilter.GaussianBlur(blur * S))
        img = _img()
        img.paste(part, (x0, y0))
    return np.asarray(img, dtype=np.float32) / 255.0


def poly(points: list[Pt], blur: float = 0.0) -> Arr:
    img = _img()
    ImageDraw.Draw(img).polygon([(x * S, y * S) for x, y in points], fill=255)
    return _mask(img, blur)


def ellipse(cx: float, cy: float, rx: float, ry: float, blur: float = 0.0) -> Arr:
    img = _img()
    box = ((cx - rx) * S, (cy - ry) * S, (cx + rx) * S, (cy + ry) * S)
    ImageDraw.Draw(img).ellipse(box, fill=255)
    return _mask(img, blur)


def strokes(lines: list[list[Pt]], width: float, blur: float = 0.0) -> Arr:
    img = _img()
    d = ImageDraw.Draw(img)
    for pts in lines:
        d.line([(x * S, y * S) for x, y in pts], fill=255, width=max(1, round(width * S)))
    return _mask(img, blur)


def tapered(centre: list[Pt], w0: float, w1: float) -> list[Pt]:
    """A polygon around a centre line whose width goes from w0 to w1 (a brow, a lash wing)."""
    left, right = [], []
    n = len(centre)
    for i, (x, y) in enumerate(centre):
        a, b = centre[max(i - 1, 0)], centre[min(i + 1, n - 1)]
        dx, dy = b[0] - a[0], b[1] - a[1]
        norm = math.hypot(dx, dy) or 1.0
        w = (w0 + (w1 - w0) * i / (n - 1)) / 2
        left.append((x - dy / norm * w, y + dx / norm * w))
        right.append((x + dy / norm * w, y - dx / norm * w))
    return left + right[::-1]


def rgb(hexcode: str) -> Arr:
    h = hexcode.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float32)


# --- layers -------------------------------------------------------------------------------------


class Layer:
    """A straight-alpha RGBA float canvas at 2x."""

    def __init__(self) -> None:
        self.rgb = np.zeros((HB * S, W * S, 3), np.float32)
        self.a = np.zeros((HB * S, W * S), np.float32)

    def paint(self, mask: Arr, color: Arr, opacity: float = 1.0) -> None:
        win = _window(mask)
        if win is None:
            return
        m = np.clip(mask[win] * opacity, 0.0, 1.0)
        col = color[win] if color.ndim == 3 else color[None, None, :]
        a, c = self.a[win], self.rgb[win]
        a_new = m + a * (1 - m)
        num = col * m[..., None] + c * (a * (1 - m))[..., None]
        self.rgb[win] = np.where(
            a_new[..., None] > 1e-6, num / np.maximum(a_new, 1e-6)[..., None], 0
        )
        self.a[win] = a_new

    def shade(self, mask: Arr, factor: Arr | float) -> None:
        """Multiply colour inside ``mask`` by ``factor`` (darken < 1 < lighten)."""
        win = _window(mask)
        if win is None:
            return
        fac = np.asarray(factor, np.float32)
        f = 1 + ((fac[win] if fac.ndim == 2 else fac) - 1) * mask[win]
        self.rgb[win] = np.clip(self.rgb[win] * f[..., None], 0, 255)

    def to_rgba(self) -> Arr:
        """Premultiplied 2x2 box downsample to uint8 RGBA at 1x."""
        out = np.zeros((HB, W, 4), np.uint8)
        win = _window(self.a)
        if win is None:
            return out
        r0, r1 = win[0].start // S, -(-win[0].stop // S)
        c0, c1 = win[1].start // S, -(-win[1].stop // S)
        a = self.a[r0 * S : r1 * S, c0 * S : c1 * S]
        pm = np.concatenate(
            [self.rgb[r0 * S : r1 * S, c0 * S : c1 * S] * a[..., None], a[..., None] * 255], axis=2
        )
        pm = pm.reshape(r1 - r0, S, c1 - c0, S, 4).mean(axis=(1, 3))
        alpha = pm[..., 3]
        col = np.where(
            alpha[..., None] > 0, pm[..., :3] * 255 / np.maximum(alpha, 1e-6)[..., None], 0
        )
        part = np.concatenate([col, alpha[..., None]], axis=2)
        out[r0:r1, c0:c1] = np.clip(np.rint(part), 0, 255).astype(np.uint8)
        return out


def _window(mask: Arr) -> tuple[slice, slice] | None:
    """The smallest row/column window holding every non-zero pixel of ``mask``."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def even_bbox(alphas: list[Arr]) -> tuple[int, int, int, int]:
    """Union bounding box (x0, y0, x1, y1) of the non-transparent pixels, on even coordinates."""
    ys, xs = np.nonzero(np.any(np.stack(alphas) > 0, axis=0))
    x0, y0 = int(xs.min()) & ~1, int(ys.min()) & ~1
    x1, y1 = int(xs.max()) + 1, int(ys.max()) + 1
    return x0, y0, x1 + (x1 - x0) % 2, y1 + (y1 - y0) % 2


def save_png(rgba: Arr, path: Path) -> None:
    Image.fromarray(rgba, "RGBA").save(path, format="PNG", optimize=True)


# --- the looks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    name: str
    display_name: str
    description: str
    feminine: bool
    skin: str
    lips: str
    hair: str
    hair_light: str
    iris: str
    brow: str
    jacket: str
    top: str
    bg: tuple[str, str, str]
    face_hw: float
    jaw_hw: float
    chin_hw: float
    chin_y: float
    eye_y: float
    mouth_y: float
    neck_hw: float
    shoulder_hw: float


LOOKS = (
    Look(
        name="mila",
        display_name="Mila",
        description="Woman presenter: shoulder-length brown hair, rose blazer over a cream top.",
        feminine=True,
        skin="#efc4a4",
        lips="#c4626c",
        hair="#77492c",
        hair_light="#a06a42",
        iris="#6a7f46",
        brow="#4a2c1c",
        jacket="#9a3850",
        top="#f2e6d6",
        bg=("#2f3b5e", "#141a2c", "#e08aa0"),
        face_hw=72,
        jaw_hw=58,
        chin_hw=17,
        chin_y=254,
        eye_y=142,
        mouth_y=216,
        neck_hw=29,
        shoulder_hw=192,
    ),
    Look(
        name="daan",
        display_name="Daan",
        description="Man presenter: short dark hair, light blue open-collar shirt, navy jacket.",
        feminine=False,
        skin="#d9a27c",
        lips="#b3695f",
        hair="#2e211a",
        hair_light="#5e4634",
        iris="#4c6c8c",
        brow="#2a1d16",
        jacket="#2a3550",
        top="#cfe0f2",
        bg=("#264a52", "#0f1f24", "#7fd0c8"),
        face_hw=75,
        jaw_hw=60,
        chin_hw=23,
        chin_y=258,
        eye_y=144,
        mouth_y=219,
        neck_hw=37,
        shoulder_hw=208,
    ),
)

# name, shape: h = opening height, w = opening half-width, r = roundness, tt/tb = upper/lower
# teeth shown, tg = tongue, th = tongue between the teeth, pout = lips forward. The dark area
# (the open interior) grows with ``avatar.visemes.OPENNESS``, which the manifest records.
VISEMES: tuple[tuple[str, dict[str, float]], ...] = (
    ("rest", {}),
    ("MBP", {"press": 1}),
    ("FV", {"h": 3.6, "w": 16, "r": 0.2, "tt": 1.0, "tl": 0.7}),
    ("SZ", {"h": 4.4, "w": 20, "r": 0.0, "tt": 1.0, "tb": 0.9}),
    ("TH", {"h": 10.5, "w": 16, "r": 0.3, "tt": 0.7, "th": 0.7}),
    ("CHJ", {"h": 8.5, "w": 13, "r": 0.7, "tt": 0.6, "tb": 0.5, "pout": 1}),
    ("DNL", {"h": 9.0, "w": 16, "r": 0.3, "tt": 0.8, "tg": 0.3}),
    ("KG", {"h": 8.0, "w": 17, "r": 0.3, "tt": 0.6, "tg": 0.3}),
    ("R", {"h": 8.5, "w": 11, "r": 0.7, "tt": 0.5, "pout": 0.5}),
    ("U", {"h": 11.0, "w": 9, "r": 1.0, "pout": 1}),
    ("I", {"h": 10.0, "w": 22, "r": 0.0, "tt": 0.8, "tb": 0.5}),
    ("E", {"h": 13.5, "w": 20, "r": 0.3, "tt": 0.9, "tg": 0.3}),
    ("O", {"h": 16.0, "w": 13, "r": 1.0, "tt": 0.4}),
    ("AA", {"h": 22.0, "w": 18, "r": 0.5, "tt": 1.0, "tg": 0.5}),
)


# --- body ---------------------------------------------------------------------------------------


def torso_outline(lk: Look) -> list[Pt]:
    sw = lk.shoulder_hw
    n = lk.neck_hw
    top = 290 if lk.feminine else 268
    right = [
        *bez((CX, top), (CX + n * 0.6, top), (CX + n + 6, 272), (CX + n + 14, 286), 8),
        *bez(
            (CX + n + 14, 286), (CX + sw * 0.55, 316), (CX + sw * 0.78, 322), (CX + sw * 0.9, 338)
        ),
        *bez((CX + sw * 0.9, 338), (CX + sw * 0.99, 350), (CX + sw, 380), (CX + sw + 3, 420)),
        (CX + sw + 8, HB),
        (CX, HB),
    ]
    return symmetric(right)


def neck_outline(lk: Look) -> list[Pt]:
    n = lk.neck_hw
    right = [
        (CX + n - 4, 190),
        *bez((CX + n - 2, 250), (CX + n, 285), (CX + n + 20, 305), (CX + 70, 330), 12),
    ]
    right.append((CX + 40, 400))
    return symmetric(right)


def draw_body(lk: Look, rng: np.random.Generator) -> Layer:
    layer = Layer()
    skin, jacket, top = rgb(lk.skin), rgb(lk.jacket), rgb(lk.top)
    torso = poly(torso_outline(lk))
    neck = poly(neck_outline(lk))
    # neck and chest skin, rounded by darker sides and the head's shadow under the chin
    layer.paint(neck, skin * 0.97)
    side = np.clip(np.abs(XX - CX) / (lk.neck_hw + 8), 0, 1) ** 3
    layer.shade(neck, 1 - 0.22 * side)
    chin_shadow = np.clip(1 - (YY - lk.chin_y + 18) / 44, 0, 1) * (YY > lk.chin_y - 40)
    layer.shade(neck, 1 - 0.35 * chin_shadow)
    if lk.feminine:
        _blouse_and_necklace(layer, lk, torso, top)
    else:
        _shirt(layer, lk, torso, top)
    _jacket(layer, lk, torso, jacket)
    # cylindrical shading of the whole torso, lit from the upper left
    cyl = 1 - 0.30 * np.clip(np.abs(XX - CX - 10) / lk.shoulder_hw, 0, 1) ** 2.5
    vert = 1.06 - 0.14 * np.clip((YY - 300) / 260, 0, 1)
    layer.shade(torso * (1 - neck), cyl * vert)
    return layer


def _blouse_and_necklace(layer: Layer, lk: Look, torso: Arr, top: Arr) -> None:
    neckline = bez((CX - 50, 300), (CX - 40, 352), (CX + 40, 352), (CX + 50, 300), 24)
    skin_v = poly([(CX - 60, 180), (CX - 60, 280), *neckline, (CX + 60, 280), (CX + 60, 180)])
    layer.paint(torso * (1 - skin_v), top)
    hem = strokes([neckline], 2.2, blur=0.6)
    layer.shade(hem * torso, 0.82)
    chain = bez(
        (CX - lk.neck_hw - 6, 292), (CX - 26, 338), (CX + 26, 338), (CX + lk.neck_hw + 6, 292)
    )
    layer.paint(strokes([chain], 1.2, blur=0.3), rgb("#d8b46a"))
    layer.paint(ellipse(CX, 332, 3.5, 4.5, blur=0.3), rgb("#e6c479"))
    layer.paint(ellipse(CX - 1, 331, 1.2, 1.4, blur=0.3), rgb("#fff4d6"))


def _shirt(layer: Layer, lk: Look, torso: Arr, top: Arr) -> None:
    n = lk.neck_hw
    skin_v = poly(
        [
            (CX - n, 180),
            (CX + n, 180),
            (CX + n, 272),
            (CX + 9, 344),
            (CX, 362),
            (CX - 9, 344),
            (CX - n, 272),
        ]
    )
    layer.paint(torso * (1 - skin_v), top)
    for sgn in (-1, 1):
        wing = [
            (CX + sgn * (n + 6), 274),
            (CX + sgn * (n - 2), 288),
            (CX + sgn * 8, 344),
            (CX + sgn * 30, 352),
            (CX + sgn * (n + 22), 300),
        ]
        m = poly(wing, blur=0.3)
        layer.paint(m, top * 1.02)
        layer.shade(strokes([[wing[2], wing[3], wing[4]]], 1.6, blur=1.2) * (1 - m), 0.78)
        layer.shade(strokes([[wing[0], wing[1], wing[2]]], 1.0, blur=0.4), 0.88)
    layer.paint(ellipse(CX, 372, 2.2, 2.2, blur=0.3), top * 0.8)


def _jacket(layer: Layer, lk: Look, torso: Arr, jacket: Arr) -> None:
    gap = 56 if lk.feminine else 62
    close_y = 470 if lk.feminine else 490
    n = lk.neck_hw - 1
    right = [(CX + n, 180), (CX + n, 280), (CX + gap, 286), (CX + 6, close_y)]
    opening = poly(right + mirror(right)[::-1])
    body = torso * (1 - opening)
    layer.paint(body, jacket)
    for sgn in (-1, 1):
        lapel = [
            (CX + sgn * gap, 286),
            (CX + sgn * (gap + 14), 290),
            (CX + sgn * (gap + 34), 372),
            (CX + sgn * (gap + 20), 378),
            (CX + sgn * (gap + 26), 386),
            (CX + sgn * 8, close_y + 2),
        ]
        m = poly(lapel, blur=0.3) * torso
        layer.paint(m, jacket * 1.12)
        edge = strokes([lapel[1:]], 2.0, blur=1.6)
        layer.shade(edge * body * (1 - m), 0.62)
        layer.shade(strokes([[lapel[0], lapel[-1]]], 1.2, blur=0.5) * body, 0.8)
        arm = bez(
            (CX + sgn * (lk.shoulder_hw - 44), 400),
            (CX + sgn * (lk.shoulder_hw - 40), 460),
            (CX + sgn * (lk.shoulder_hw - 38), 520),
            (CX + sgn * (lk.shoulder_hw - 40), HB),
        )
        layer.shade(strokes([arm], 3.0, blur=3.0) * body, 0.78)
    # the far side of the jacket front overlaps below the button
    layer.paint(ellipse(CX, close_y + 12, 3.2, 3.2, blur=0.3), jacket * 0.55)
    layer.shade(strokes([[(CX + 6, close_y), (CX + 4, HB)]], 1.4, blur=0.6) * torso, 0.7)


# --- head ---------------------------------------------------------------------------------------


def face_outline(lk: Look) -> list[Pt]:
    top, cheek = 40.0, 150.0
    hw, jw, chw, cy = lk.face_hw, lk.jaw_hw, lk.chin_hw, lk.chin_y
    jaw_y = cy - (36 if lk.feminine else 30)
    upper = [
        (CX + hw * math.sin(t), cheek - (cheek - top) * math.cos(t))
        for t in np.linspace(0, math.pi / 2, 20)
    ]
    right = [
        *upper,
        *bez(
            (CX + hw, cheek), (CX + hw, cheek + 30), (CX + jw + 5, jaw_y - 14), (CX + jw, jaw_y), 14
        )[1:],
        *bez(
            (CX + jw, jaw_y), (CX + jw - 8, jaw_y + 14), (CX + chw + 10, cy - 1), (CX + chw, cy), 14
        )[1:],
        *bez((CX + chw, cy), (CX + chw * 0.6, cy + 1.5), (CX + 3, cy + 2), (CX, cy + 2), 6)[1:],
    ]
    return symmetric(right)


def eye_curves(lk: Look, sgn: int) -> tuple[list[Pt], list[Pt]]:
    """Upper and lower lid curves of one eye, inner corner to outer corner."""
    ex, ey = CX + sgn * (33 if lk.feminine else 35), lk.eye_y
    hl = 14.5 if lk.feminine else 14.0
    up_h, lo_h = (8.5, 5.5) if lk.feminine else (7.0, 5.0)

    def p(dx: float, dy: float) -> Pt:
        return (ex + sgn * dx, ey + dy)

    upper = bez(p(-hl, 1.5), p(-hl * 0.6, -up_h), p(hl * 0.45, -up_h - 0.5), p(hl, -1.5), 28)
    lower = bez(p(-hl, 1.5), p(-hl * 0.5, lo_h + 1), p(hl * 0.5, lo_h + 0.5), p(hl, -1.5), 28)
    return upper, lower


def skin_field(lk: Look, face: Arr) -> Arr:
    """Skin colour per pixel: lit from the upper left, rounded towards the face's edges."""
    base = rgb(lk.skin)
    edge = _mask(Image.fromarray((face * 255).astype(np.uint8)), 14.0)
    rim = np.clip(edge * 1.8 - 0.35, 0, 1)
    light = 1.04 - 0.06 * (XX - CX + 20) / lk.face_hw - 0.05 * np.clip((YY - 200) / 60, 0, 1)
    fac = (0.74 + 0.26 * rim) * light
    jaw = np.clip((np.abs(XX - CX) - 30) / 40, 0, 1) * np.clip((YY - 185) / 50, 0, 1)
    fac = fac * (1 - 0.10 * jaw)
    fac = fac + 0.05 * ellipse(CX - 40, 172, 18, 10, 8) + 0.03 * ellipse(CX + 40, 172, 18, 10, 8)
    fac = fac + 0.04 * ellipse(CX - 8, 80, 34, 18, 14)
    col = base[None, None, :] * fac[..., None]
    blush = ellipse(CX - 44, 192, 20, 12, 9) + ellipse(CX + 44, 192, 20, 12, 9)
    tint = np.array([232, 128, 118], np.float32)
    k = (0.22 if lk.feminine else 0.10) * blush[..., None]
    return np.clip(col * (1 - k) + tint * k, 0, 255)


def draw_head(lk: Look, rng: np.random.Generator) -> tuple[Layer, Arr]:
    layer = Layer()
    skin = rgb(lk.skin)
    face = poly(face_outline(lk))
    field = skin_field(lk, face)
    if lk.feminine:
        _hair_back(layer, lk, rng)
    for sgn in (-1, 1):
        ex = CX + sgn * (lk.face_hw - 4)
        ear = ellipse(ex, 168, 9.5, 21)
        layer.paint(ear, skin * 0.9)
        layer.shade(ellipse(ex + sgn * 3, 168, 4, 13, 2) * ear, 0.8)
    layer.paint(face, field)
    _features(layer, lk, face)
    if lk.feminine:
        _hair_front_long(layer, lk, rng)
    else:
        _hair_short(layer, lk, rng)
    return layer, field


def _features(layer: Layer, lk: Look, face: Arr) -> None:
    skin = rgb(lk.skin)
    for sgn in (-1, 1):
        upper, _lower = eye_curves(lk, sgn)
        ex = CX + sgn * (33 if lk.feminine else 35)
        layer.shade(ellipse(ex, lk.eye_y - 3, 20, 12, 6) * face, 0.9)
        crease = [(x, y - 5.5) for x, y in upper[4:-3]]
        layer.shade(strokes([crease], 1.3, blur=0.9) * face, 0.8)
        brow_c = bez(
            (ex - sgn * 17, lk.eye_y - 15),
            (ex - sgn * 6, lk.eye_y - 23),
            (ex + sgn * 8, lk.eye_y - 25),
            (ex + sgn * 19, lk.eye_y - 17),
            16,
        )
        w0, w1 = (4.4, 1.6) if lk.feminine else (6.0, 3.0)
        layer.paint(poly(tapered(brow_c, w0, w1), blur=0.5), rgb(lk.brow), 0.92)
    ny = lk.mouth_y - 24
    layer.shade(
        strokes(
            [bez((CX + 7, lk.eye_y + 4), (CX + 9, ny - 26), (CX + 11, ny - 12), (CX + 12, ny - 4))],
            4,
            blur=3,
        ),
        0.88,
    )
    layer.shade(strokes([[(CX - 5, lk.eye_y + 6), (CX - 3, ny - 10)]], 3, blur=2.5), 1.05)
    layer.shade(ellipse(CX - 2, ny - 5, 6, 5, 3), 1.07)
    layer.shade(ellipse(CX, ny + 4, 12, 3.5, 2.2), 0.86)
    for sgn in (-1, 1):
        wing = bez(
            (CX + sgn * 14, ny - 8),
            (CX + sgn * 16, ny - 1),
            (CX + sgn * 12, ny + 3),
            (CX + sgn * 6, ny + 2),
            10,
        )
        layer.shade(strokes([wing], 1.4, blur=0.8), 0.78)
        layer.shade(ellipse(CX + sgn * 6.5, ny + 1, 3.6, 1.6, 0.6), 0.6)
    layer.shade(
        strokes(
            [
                [(CX - 3, ny + 5), (CX - 3, lk.mouth_y - 7)],
                [(CX + 3, ny + 5), (CX + 3, lk.mouth_y - 7)],
            ],
            1.2,
            blur=1.2,
        ),
        0.94,
    )
    layer.shade(ellipse(CX, lk.mouth_y + 15, 12, 4, 3), 0.9)
    layer.shade(ellipse(CX, lk.chin_y - 14, 14, 8, 6), 1.05)
    layer.rgb = np.clip(layer.rgb, 0, 255)
    _ = skin


def _hair_mask(lk: Look, rng: np.random.Generator, lines: list[list[Pt]], width: float) -> Arr:
    return strokes(lines, width, blur=0.35)


def _hair_texture(
    layer: Layer, lk: Look, mask: Arr, flows: list[list[Pt]], rng: np.random.Generator
) -> None:
    dark = rgb(lk.hair) * 0.7
    light = rgb(lk.hair_light)
    half = len(flows) // 2
    layer.paint(strokes(flows[:half], 0.9, blur=0.25) * mask, dark, 0.45)
    layer.paint(strokes(flows[half:], 0.8, blur=0.25) * mask, light, 0.35)


def _hair_back(layer: Layer, lk: Look, rng: np.random.Generator) -> None:
    right = [
        *bez((CX, 20), (CX + 70, 18), (CX + 104, 60), (CX + 104, 130), 20),
        *bez((CX + 104, 130), (CX + 104, 200), (CX + 114, 270), (CX + 122, 318), 16)[1:],
        *bez((CX + 122, 318), (CX + 110, 332), (CX + 80, 330), (CX + lk.neck_hw - 3, 310), 10)[1:],
        (CX + lk.neck_hw - 6, 250),
        (CX, 250),
    ]
    mask = poly(symmetric(right), blur=0.4)
    layer.paint(mask, rgb(lk.hair))
    depth = np.clip(1 - np.abs(XX - CX) / 60, 0, 1) * np.clip((YY - 180) / 60, 0, 1)
    layer.shade(mask, 1 - 0.1 * depth)
    flows = []
    for _ in range(110):
        sgn = 1 if rng.random() < 0.5 else -1
        x0 = CX - 20 + rng.normal(0, 4)
        x1 = CX + sgn * rng.uniform(60, 104)
        x2 = CX + sgn * rng.uniform(94, 120)
        flows.append(
            bez(
                (x0, 28 + rng.uniform(0, 6)),
                (x1, 30 + rng.uniform(0, 30)),
                (x2, rng.uniform(120, 200)),
                (x2 + sgn * rng.uniform(-4, 8), rng.uniform(260, 326)),
                30,
            )
        )
    _hair_texture(layer, lk, mask, flows, rng)


def _hair_front_long(layer: Layer, lk: Look, rng: np.random.Generator) -> None:
    hw = lk.face_hw
    fringe = [
        (CX - 22, 26),
        *bez((CX - 22, 26), (CX + 40, 24), (CX + hw + 20, 40), (CX + hw + 30, 110), 20),
        *bez(
            (CX + hw + 30, 110), (CX + hw + 34, 180), (CX + hw + 24, 250), (CX + hw + 34, 318), 16
        )[1:],
        *bez((CX + hw + 34, 318), (CX + hw + 14, 322), (CX + hw, 300), (CX + hw - 4, 240), 10)[1:],
        *bez((CX + hw - 4, 240), (CX + hw - 2, 190), (CX + hw - 4, 140), (CX + hw - 8, 112), 10)[
            1:
        ],
        *bez((CX + hw - 8, 112), (CX + 34, 100), (CX - 6, 64), (CX - 32, 54), 18)[1:],
        *bez((CX - 32, 54), (CX - hw + 14, 58), (CX - hw + 4, 92), (CX - hw + 2, 130), 10)[1:],
        *bez((CX - hw + 2, 130), (CX - hw + 2, 190), (CX - hw, 250), (CX - hw - 14, 318), 14)[1:],
        *bez(
            (CX - hw - 14, 318), (CX - hw - 30, 322), (CX - hw - 34, 300), (CX - hw - 30, 240), 10
        )[1:],
        *bez((CX - hw - 30, 240), (CX - hw - 34, 140), (CX - hw - 30, 40), (CX - 22, 26), 24)[1:],
    ]
    mask = poly(fringe, blur=0.4)
    layer.paint(mask, rgb(lk.hair))
    sheen = ellipse(CX + 10, 62, 70, 26, 10) * (1 - ellipse(CX + 10, 74, 64, 22, 8))
    layer.shade(mask * sheen, 1.35)
    inner = np.clip(1 - np.abs(np.abs(XX - CX) - hw) / 14, 0, 1) * (YY > 120)
    layer.shade(mask * inner, 0.8)
    flows = []
    for _ in range(120):
        sgn = 1 if rng.random() < 0.68 else -1
        x0 = CX - 22 + rng.normal(0, 3)
        xs = CX + sgn * rng.uniform(hw - 6, hw + 30)
        flows.append(
            bez(
                (x0, 28 + rng.uniform(0, 4)),
                (CX + sgn * rng.uniform(20, 60), 30 + rng.uniform(0, 30)),
                (xs, rng.uniform(70, 140)),
                (xs + sgn * rng.uniform(-6, 6), rng.uniform(220, 320)),
                30,
            )
        )
    _hair_texture(layer, lk, mask, flows, rng)


def _hair_short(layer: Layer, lk: Look, rng: np.random.Generator) -> None:
    hw = lk.face_hw
    right = [
        *bez((CX - 10, 24), (CX + 44, 16), (CX + hw + 8, 36), (CX + hw + 7, 96), 20),
        *bez((CX + hw + 7, 96), (CX + hw + 5, 120), (CX + hw, 136), (CX + hw - 4, 150), 8)[1:],
        (CX + hw - 8, 150),
        *bez((CX + hw - 8, 146), (CX + hw - 8, 118), (CX + hw - 14, 92), (CX + hw - 24, 80), 10)[
            1:
        ],
        *bez((CX + hw - 24, 80), (CX + 30, 62), (CX - 10, 64), (CX - 30, 70), 12)[1:],
    ]
    left = [
        *bez((CX - 30, 70), (CX - hw + 20, 76), (CX - hw + 10, 90), (CX - hw + 7, 150), 10)[1:],
        (CX - hw + 4, 150),
        *bez((CX - hw - 4, 150), (CX - hw - 7, 120), (CX - hw - 10, 50), (CX - 10, 24), 20)[1:],
    ]
    mask = poly(right + left, blur=0.5)
    layer.paint(mask, rgb(lk.hair))
    sides = np.clip((np.abs(XX - CX) - hw + 16) / 12, 0, 1) * np.clip((YY - 90) / 30, 0, 1)
    layer.shade(mask * sides, 1.25)
    sheen = ellipse(CX - 6, 40, 48, 16, 9)
    layer.shade(mask * sheen, 1.4)
    flows = []
    for _ in range(420):
        x = rng.uniform(CX - hw - 6, CX + hw + 6)
        y = rng.uniform(16, 150)
        ln = rng.uniform(6, 13)
        ang = math.radians(-100 + (x - CX) * 0.6 + rng.normal(0, 12))
        flows.append([(x, y), (x + ln * math.cos(ang), y + ln * math.sin(ang))])
    _hair_texture(layer, lk, mask, flows, rng)


# --- eyes ---------------------------------------------------------------------------------------


def draw_eyes(lk: Look, field: Arr, state: str) -> Layer:
    layer = Layer()
    lash = np.array([38, 26, 24], np.float32)
    lid = field * 0.95
    for sgn in (-1, 1):
        upper, lower = eye_curves(lk, sgn)
        shape = poly(upper + lower[::-1])
        ex, ey = CX + sgn * (33 if lk.feminine else 35), lk.eye_y
        if state == "closed":
            layer.paint(poly(upper + lower[::-1], blur=0.4) * 1.0 + shape, lid)
            close = [
                ((ux + lx) / 2, uy * 0.25 + ly * 0.75)
                for (ux, uy), (lx, ly) in zip(upper, lower, strict=True)
            ]
            layer.paint(poly(tapered(close, 1.0, 2.4)), lash)
            continue
        layer.paint(shape, np.array([242, 236, 230], np.float32))
        layer.shade(shape * np.clip((ey + 2 - YY) / 8, 0, 1), 0.82)
        r = 7.0 if lk.feminine else 6.6
        iris = ellipse(ex + sgn * 0.5, ey, r, r) * shape
        dist = np.hypot(XX - ex - sgn * 0.5, YY - ey) / r
        icol = rgb(lk.iris)[None, None, :] * (1.15 - 0.55 * np.clip(dist, 0, 1) ** 2)[..., None]
        layer.paint(iris, np.clip(icol, 0, 255))
        layer.paint(
            strokes([_circle(ex + sgn * 0.5, ey, r - 0.4)], 1.0, blur=0.3) * shape,
            rgb(lk.iris) * 0.45,
        )
        layer.paint(
            ellipse(ex + sgn * 0.5, ey, 2.9, 2.9) * shape, np.array([16, 12, 12], np.float32)
        )
        layer.paint(
            ellipse(ex - 2, ey - 2.6, 1.5, 1.5, 0.2) * shape,
            np.array([255, 255, 255], np.float32),
            0.9,
        )
        layer.shade(shape * np.clip((ey - 1 - YY) / 5, 0, 1), 0.8)
        edge = upper
        if state == "half":
            edge = [
                (ux, uy * 0.45 + ly * 0.55)
                for (ux, uy), (_lx, ly) in zip(upper, lower, strict=True)
            ]
            layer.paint(poly(upper + edge[::-1], blur=0.2) * shape + poly(upper + edge[::-1]), lid)
        w1 = 2.8 if lk.feminine else 2.0
        layer.paint(poly(tapered(edge, 1.2, w1)), lash)
        layer.paint(strokes([lower[3:-2]], 0.7, blur=0.4), field * 0.7, 0.7)
        if lk.feminine:
            ox, oy = edge[-1]
            wing = [(ox - sgn * 5, oy - 0.5), (ox, oy), (ox + sgn * 3.5, oy - 2.5)]
            layer.paint(poly(tapered(wing, 1.6, 0.6)), lash)
    return layer


def _circle(cx: float, cy: float, r: float) -> list[Pt]:
    return [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40)]


# --- mouths -------------------------------------------------------------------------------------


def draw_mouth(lk: Look, shape: dict[str, float]) -> Layer:
    layer = Layer()
    lips = rgb(lk.lips)
    my = lk.mouth_y
    if "h" not in shape:
        _closed_mouth(layer, lk, lips, press=bool(shape.get("press", 0)))
        return layer
    h, wi, r = shape["h"], shape["w"], shape["r"]
    pout = shape.get("pout", 0.0)
    wo = wi + 4 - 2 * pout
    k = 2 + 3 * (1 - r)
    xs = np.linspace(-wo, wo, 61)

    def g(x: float) -> float:
        u = min(abs(x) / wi, 1.0)
        return float((1 - u**k) ** (0.5 + 0.3 * (1 - r)))

    def go(x: float) -> float:
        u = min(abs(x) / wo, 1.0)
        return float((1 - u * u) ** 0.6)

    tu, tl = 4.5 + 1.5 * pout, (6.5 + 1.5 * pout) * shape.get("tl", 1.0)
    up_in = [(CX + x, my - h * 0.3 * g(x)) for x in xs]
    lo_in = [(CX + x, my + h * 0.7 * g(x)) for x in xs]
    bow = [1 - 0.25 * math.exp(-((x / 3.5) ** 2)) for x in xs]
    up_out = [
        (CX + x, y - tu * go(x) * b - 0.6) for (_, y), x, b in zip(up_in, xs, bow, strict=True)
    ]
    lo_out = [(CX + x, y + tl * go(x) + 0.6) for (_, y), x in zip(lo_in, xs, strict=True)]
    outer = poly(up_out + lo_out[::-1], blur=0.5)
    inner = poly(up_in + lo_in[::-1])
    layer.paint(outer, lips)
    layer.shade(poly(up_out + up_in[::-1], blur=0.4), 0.8)
    layer.shade(ellipse(CX, my + h * 0.7 + tl * 0.45, wi * 0.5, tl * 0.25, 1.5), 1.16)
    top = np.array([46, 14, 20], np.float32)
    layer.paint(inner, top)
    near = np.clip(1 - np.abs(XX - CX) / (wi + 1), 0, 1)
    y_top = my - h * 0.3 * np.power(
        np.clip(1 - np.clip(np.abs(XX - CX) / wi, 0, 1) ** k, 0, 1), 0.5 + 0.3 * (1 - r)
    )
    y_bot = my + h * 0.7 * np.power(
        np.clip(1 - np.clip(np.abs(XX - CX) / wi, 0, 1) ** k, 0, 1), 0.5 + 0.3 * (1 - r)
    )
    teeth = np.array([238, 234, 226], np.float32)
    tt, tb = shape.get("tt", 0.0), shape.get("tb", 0.0)
    if tt:
        band = (YY < y_top + tt * min(4.5, h * 0.55)) * (near > 0.22)
        layer.paint(inner * band, teeth)
    if tb:
        band = (YY > y_bot - tb * min(3.0, h * 0.3)) * (near > 0.3)
        layer.paint(inner * band, teeth * 0.92)
    if shape.get("tg", 0.0):
        tongue = ellipse(CX, my + h * 0.7, wi * 0.62, h * 0.7 * shape["tg"], 0.8)
        layer.paint(inner * tongue, np.array([176, 78, 88], np.float32))
    if shape.get("th", 0.0):
        layer.paint(
            inner * ellipse(CX, my + h * 0.25, wi * 0.5, h * 0.45, 0.5),
            np.array([186, 88, 96], np.float32),
        )
    layer.paint(strokes([up_in], 0.8, blur=0.4) * outer, lips * 0.7, 0.6)
    return layer


def _closed_mouth(layer: Layer, lk: Look, lips: Arr, *, press: bool) -> None:
    my = lk.mouth_y
    wo = 24.0 if lk.feminine else 24.5
    wo += 1.5 if press else 0
    tu = (5.5 if lk.feminine else 4.5) * (0.6 if press else 1)
    tl = (7.0 if lk.feminine else 6.0) * (0.6 if press else 1)
    half = [
        *bez(
            (CX - wo, my + 0.5),
            (CX - wo * 0.7, my - 1),
            (CX - 12, my - tu - 1),
            (CX - 6, my - tu - 0.5),
            12,
        ),
        *bez(
            (CX - 6, my - tu - 0.5),
            (CX - 3, my - tu),
            (CX - 1.5, my - tu * 0.72),
            (CX, my - tu * 0.72),
            6,
        )[1:],
    ]
    upper = half + mirror(half)[::-1][1:]
    line = bez(
        (CX - wo, my + 0.5),
        (CX - wo * 0.4, my + 1.6),
        (CX + wo * 0.4, my + 1.6),
        (CX + wo, my + 0.5),
        24,
    )
    lower = bez(
        (CX + wo, my + 0.5),
        (CX + wo * 0.6, my + tl + 2),
        (CX - wo * 0.6, my + tl + 2),
        (CX - wo, my + 0.5),
        24,
    )
    layer.paint(poly(line + lower[1:-1], blur=0.5), lips)
    layer.paint(poly(upper + line[::-1][1:-1], blur=0.5), lips * 0.82)
    layer.shade(ellipse(CX, my + tl * 0.6, wo * 0.45, tl * 0.22, 1.5), 1.16)
    layer.paint(strokes([line], 1.3, blur=0.5), lips * 0.64, 0.9)
    for sgn in (-1, 1):
        layer.paint(ellipse(CX + sgn * wo, my + 0.5, 1.6, 1.6, 0.8), lips * 0.64, 0.6)


# --- pack ---------------------------------------------------------------------------------------


def crop(layer_rgba: Arr, box: tuple[int, int, int, int]) -> Arr:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(layer_rgba[y0:y1, x0:x1])


def dark_pixels(rgba: Arr) -> int:
    """Opaque pixels darker than luma 60 (BT.601 limited range): the mouth's open interior."""
    f = rgba.astype(np.float32)
    y = 16 + 0.256788 * f[..., 0] + 0.504129 * f[..., 1] + 0.097906 * f[..., 2]
    return int(((y < 60) & (rgba[..., 3] > 128)).sum())


def build_pack(lk: Look, out: Path) -> dict[str, Any]:
    rng = np.random.default_rng(sum(map(ord, lk.name)) * 7919)
    out.mkdir(parents=True, exist_ok=True)
    body = draw_body(lk, rng).to_rgba()
    head_layer, field = draw_head(lk, rng)
    head = head_layer.to_rgba()
    eyes = {s: draw_eyes(lk, field, s).to_rgba() for s in ("open", "half", "closed")}
    mouths = {name: draw_mouth(lk, shape).to_rgba() for name, shape in VISEMES}

    body_box = even_bbox([body[..., 3]])
    head_box = even_bbox([head[..., 3]])
    eye_box = even_bbox([e[..., 3] for e in eyes.values()])
    mouth_box = even_bbox([m[..., 3] for m in mouths.values()])
    save_png(crop(body, body_box), out / "body.png")
    save_png(crop(head, head_box), out / "head.png")
    for state, img in eyes.items():
        save_png(crop(img, eye_box), out / f"eyes_{state}.png")
    visemes: dict[str, Any] = {}
    for name, _shape in VISEMES:
        img = crop(mouths[name], mouth_box)
        save_png(img, out / f"mouth_{name}.png")
        visemes[name] = {
            "file": f"mouth_{name}.png",
            "openness": OPENNESS[name],
            "dark_px": dark_pixels(img),
        }
    hx, hy = head_box[0], head_box[1]
    manifest: dict[str, Any] = {
        "version": VERSION,
        "name": lk.name,
        "display_name": lk.display_name,
        "description": lk.description,
        "frame": {"width": 1280, "height": 720},
        "size": {"width": W, "height": H},
        "layout": {
            "name": "centre-left",
            "origin": list(ORIGIN),
            "product_card": [860, 70, 380, 480],
            "captions": [40, 600, 1200, 96],
            "note": "Avatar box x 250-690, full height to the frame's bottom edge; the right "
            "third (x >= 860) holds the product card; captions sit in the bottom band over "
            "the torso. Anchors are in avatar pixels from the box's top-left.",
        },
        "layers": {
            "body": {"file": "body.png", "anchor": [body_box[0], body_box[1]]},
            "head": {"file": "head.png", "anchor": [hx, hy]},
        },
        "eyes": {
            "anchor": [eye_box[0] - hx, eye_box[1] - hy],
            "files": {s: f"eyes_{s}.png" for s in ("open", "half", "closed")},
        },
        "blink": {"half_at": 0.3, "closed_at": 0.7, "frames": ["half", "closed", "closed", "half"]},
        "mouth": {"anchor": [mouth_box[0] - hx, mouth_box[1] - hy], "visemes": visemes},
        "idle": {
            "blink_interval_s": [2.5, 6.0],
            "breath_amplitude_px": 2,
            "breath_period_s": 4.8,
            "head_sway_amplitude_px": 4,
            "head_sway_period_s": 7.5,
            "max_head_offset_px": 4,
        },
        "background": {
            "top": lk.bg[0],
            "bottom": lk.bg[1],
            "accent": lk.bg[2],
            "seed": int(rng.integers(0, 2**31 - 1)),
        },
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=root / "assets" / "avatars")
    parser.add_argument("--only", nargs="*", help="pack names to build (default: all)")
    args = parser.parse_args()
    for lk in LOOKS:
        if args.only and lk.name not in args.only:
            continue
        m = build_pack(lk, args.out / lk.name)
        size = sum(p.stat().st_size for p in (args.out / lk.name).iterdir())
        darks = {k: v["dark_px"] for k, v in m["mouth"]["visemes"].items()}
        print(f"{lk.name}: {size / 1024:.0f} KB, dark px per viseme {darks}")


if __name__ == "__main__":
    main()
