"""Overlays drawn once with Pillow: the AI label, captions, the studio backdrop.

Every function here is pure: inputs in, an RGBA (or RGB) array out. The compositor converts the
result into a ``Sprite`` once and caches it, so no frame ever pays for text layout. Sizes are
given at 720p and multiplied by ``scale`` (the frame's size relative to 1280x720). The product
card is in :mod:`avatarcast.programme.card`, the shared drawing helpers in
:mod:`avatarcast.programme.drawing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from PIL import Image, ImageDraw

from avatarcast.errors import ConfigError
from avatarcast.programme.drawing import (
    RGB,
    U8,
    Box,
    Font,
    even,
    fit_lines,
    line_height,
    phrase,
    px,
    rgba,
    rounded_mask,
    wrap,
)
from avatarcast.programme.fonts import Style, font_for

__all__ = [
    "CORNERS",
    "LABEL_MIN_TEXT_FRACTION",
    "LABEL_PLATE_RGB",
    "LABEL_TEXT_RGB",
    "Corner",
    "LabelConfig",
    "LabelImage",
    "caption_max_height",
    "label_text",
    "render_caption",
    "render_label",
    "studio_background",
]

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = get_args(Corner)

LABEL_MIN_TEXT_FRACTION = 0.05
"""The label's text ink is at least this share of the frame's shorter side."""
LABEL_PLATE_RGB: RGB = (14, 14, 18)
LABEL_TEXT_RGB: RGB = (255, 255, 255)


def label_text(lang: str) -> str:
    """The default AI-disclosure text for ``lang`` ("nl-NL" counts as "nl"); English if unknown."""
    return phrase(lang, "label")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelConfig:
    """What the AI label says and where. There is deliberately no way to switch it off.

    ``text`` None means ``label_text(lang)``; ``lang`` None means the programme's language.
    """

    text: str | None = None
    lang: str | None = None
    position: Corner = "top-left"

    def __post_init__(self) -> None:
        if self.position not in CORNERS:
            raise ConfigError(
                f"label position {self.position!r} is not one of {', '.join(CORNERS)}"
            )
        if self.text is not None and not self.text.strip():
            raise ConfigError("label text must not be empty; leave it unset for the default")


# --- the AI label -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelImage:
    """The label as drawn: a solid plate, its text's ink box (in image pixels), its colours."""

    rgba: U8
    text_box: Box
    plate_rgb: RGB
    text_rgb: RGB


def _ink_box(text: str, font: Font) -> Box:
    """The exact box of the pixels ``text`` inks, relative to its drawing origin."""
    x0, y0, x1, y1 = font.getbbox(text)
    pad = math.ceil(font.size)
    canvas = Image.new("L", (int(x1 - x0) + 2 * pad, int(y1 - y0) + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - x0, pad - y0), text, font=font, fill=255)
    bbox = canvas.getbbox()
    if bbox is None:
        return Box(0, 0, 0, 0)
    return Box(
        int(bbox[0] - pad + x0), int(bbox[1] - pad + y0), bbox[2] - bbox[0], bbox[3] - bbox[1]
    )


def render_label(
    text: str, *, frame_width: int, frame_height: int, max_width: int | None = None
) -> LabelImage:
    """A solid high-contrast plate whose text inks at least 5% of the frame's shorter side.

    The font size is found by measuring the rendered ink, not assumed from the point size, with
    a little headroom so a video encoder's blur cannot take the text under the floor. Text too
    wide for ``max_width`` on one line (a long wording in a narrow portrait frame) goes on two,
    each of them inking the same floor.
    """
    short = min(frame_width, frame_height)
    target = math.ceil(short * LABEL_MIN_TEXT_FRACTION * 1.1)
    limit = max_width if max_width is not None else frame_width
    font, inks = _label_font([text], target)
    lines = [text]
    pad_y = max(4, round(inks[0].h * 0.32))
    pad_x = max(6, round(inks[0].h * 0.5))
    if even(inks[0].w + 2 * pad_x) > limit and len(text.split()) > 1:
        lines = _two_lines(text)
        font, inks = _label_font(lines, target)
    if len(lines) == 1:
        ink = inks[0]
        w, h = even(ink.w + 2 * pad_x), even(ink.h + 2 * pad_y)
    else:
        step = max(i.h for i in inks) + pad_y // 2
        w = even(max(i.w for i in inks) + 2 * pad_x)
        h = even(step * (len(lines) - 1) + inks[-1].h + 2 * pad_y)
    if w > limit:
        raise ConfigError(f"label text {text!r} needs {w} px but the frame allows {limit} px")
    plate = Image.new("RGB", (w, h), LABEL_PLATE_RGB)
    draw = ImageDraw.Draw(plate)
    if len(lines) == 1:
        ink = inks[0]
        ox, oy = (w - ink.w) // 2, (h - ink.h) // 2
        draw.text((ox - ink.x, oy - ink.y), text, font=font, fill=LABEL_TEXT_RGB)
        box = Box(ox, oy, ink.w, ink.h)
    else:
        x0, y0, x1, y1 = w, h, 0, 0
        for i, (line, ink) in enumerate(zip(lines, inks, strict=True)):
            ox, oy = (w - ink.w) // 2, pad_y + i * step
            draw.text((ox - ink.x, oy - ink.y), line, font=font, fill=LABEL_TEXT_RGB)
            x0, y0 = min(x0, ox), min(y0, oy)
            x1, y1 = max(x1, ox + ink.w), max(y1, oy + ink.h)
        box = Box(x0, y0, x1 - x0, y1 - y0)
    plate.putalpha(rounded_mask(w, h, round(min(h, inks[0].h + 2 * pad_y) * 0.14)))
    return LabelImage(
        rgba=rgba(plate),
        text_box=box,
        plate_rgb=LABEL_PLATE_RGB,
        text_rgb=LABEL_TEXT_RGB,
    )


def _label_font(lines: list[str], target: int) -> tuple[Font, list[Box]]:
    """The smallest condensed-bold font (from ``target`` up) whose every line inks ``target``."""
    style: Style = "condensed-bold"
    text = " ".join(lines)
    size = target
    font = font_for(text, size, style=style)
    inks = [_ink_box(line, font) for line in lines]
    while min(i.h for i in inks) < target and size < 4 * target:
        size += max(1, (target - min(i.h for i in inks)) // 2)
        font = font_for(text, size, style=style)
        inks = [_ink_box(line, font) for line in lines]
    return font, inks


def _two_lines(text: str) -> list[str]:
    """``text`` split at the space nearest its middle."""
    words = text.split()
    best = min(
        range(1, len(words)),
        key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))),
    )
    return [" ".join(words[:best]), " ".join(words[best:])]


# --- captions -----------------------------------------------------------------------------------

CAPTION_PLATE_RGBA = (10, 12, 18, 188)


def _caption_metrics(scale: float) -> tuple[int, int, int, int]:
    """Base font size, smallest font size, horizontal and vertical padding."""
    size = px(30, scale)
    return size, max(8, round(size * 0.72)), round(size * 0.7), round(size * 0.38)


def caption_max_height(scale: float) -> int:
    """The tallest a caption plate gets: two lines at the base size."""
    size, _, _, pad_y = _caption_metrics(scale)
    font = font_for("Hg", size)
    return even(2 * round(line_height(font) * 1.08) + 2 * pad_y)


def render_caption(text: str, *, max_width: int, scale: float) -> U8:
    """Text on a semi-opaque plate, wrapped to at most two lines, never wider than ``max_width``.

    A long sentence first gets a smaller font; if two lines still cannot hold it at the smallest
    size, the second line ends in an ellipsis.
    """
    base, smallest, pad_x, pad_y = _caption_metrics(scale)
    inner = max(1, max_width - 2 * pad_x)
    size, lines = base, wrap(text, font_for(text, base), inner)
    while len(lines) > 2 and size > smallest:
        size = max(smallest, size - max(1, base // 15))
        lines = wrap(text, font_for(text, size), inner)
    font = font_for(text, size)
    if len(lines) > 2:
        lines = fit_lines(text, font, inner, 2)
    lines = lines or [""]
    step = round(line_height(font) * 1.08)
    ascent = font.getmetrics()[0]
    text_w = max(math.ceil(font.getlength(line)) for line in lines)
    w = even(min(max_width, text_w + 2 * pad_x))
    h = even(step * len(lines) + 2 * pad_y)
    r, g, b, alpha = CAPTION_PLATE_RGBA
    plate = Image.new("RGBA", (w, h), (r, g, b, 0))
    plate.putalpha(rounded_mask(w, h, round(size * 0.4)).point(lambda v: v * alpha // 255))
    draw = ImageDraw.Draw(plate)
    for i, line in enumerate(lines):
        x = (w - font.getlength(line)) / 2
        draw.text(
            (x, pad_y + i * step + ascent), line, font=font, fill=(255, 255, 255), anchor="ls"
        )
    return rgba(plate)


# --- backdrop -----------------------------------------------------------------------------------


def studio_background(width: int, height: int) -> U8:
    """A quiet dark-blue studio gradient with a soft glow behind the presenter (RGB)."""
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top = np.array([14, 20, 34], np.float32)
    bottom = np.array([30, 40, 64], np.float32)
    glow = np.array([46, 62, 96], np.float32)
    aspect = width / height
    d2 = ((xx - 0.36) * aspect / 0.55) ** 2 + ((yy - 0.42) / 0.75) ** 2
    rgb = top + (bottom - top) * yy + glow * np.exp(-2.2 * d2)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
