"""The Pillow toolkit the overlays share: boxes, pixel sizes, masks, shadows, wrapping, words.

Sizes are given at 720p and multiplied by ``scale``; text wraps by measured pixel width. The
programme's fixed words (the AI label, the card's stock and price lines) are here in each
language it draws, with prices formatted by :func:`avatarcast.locale.format_price`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from avatarcast.errors import UnknownNameError
from avatarcast.locale import format_price

__all__ = [
    "RGB",
    "U8",
    "Box",
    "Font",
    "even",
    "fit_lines",
    "line_height",
    "phrase",
    "price_text",
    "px",
    "rgba",
    "rounded_mask",
    "soft_shadow",
    "wrap",
]

U8 = npt.NDArray[np.uint8]
RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont

_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "label": "AI-generated presenter",
        "lowest": "Lowest price last 30 days: {price}",
        "sale": "SALE",
        "in_stock": "In stock",
        "in_stock_n": "In stock · {n} available",
        "out_of_stock": "Out of stock",
        "preorder": "Pre-order",
        "backorder": "Backorder",
    },
    "nl": {
        "label": "AI-gegenereerde presentator",
        "lowest": "Laagste prijs afgelopen 30 dagen: {price}",
        "sale": "ACTIE",
        "in_stock": "Op voorraad",
        "in_stock_n": "Op voorraad · {n} beschikbaar",
        "out_of_stock": "Uitverkocht",
        "preorder": "Pre-order",
        "backorder": "Nabestelling",
    },
    "zh": {
        "label": "AI生成主播",
        "lowest": "近30天最低价：{price}",
        "sale": "特价",
        "in_stock": "有货",
        "in_stock_n": "有货 · 库存{n}件",
        "out_of_stock": "缺货",
        "preorder": "预售",
        "backorder": "补货中",
    },
}


def _lang_key(lang: str) -> str:
    key = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    return key if key in _STRINGS else "en"


def phrase(lang: str, key: str, **values: object) -> str:
    """The programme's fixed words ``key`` in ``lang`` ("nl-NL" counts as "nl"), else English."""
    return _STRINGS[_lang_key(lang)][key].format(**values)


def price_text(amount: Decimal, currency: str, lang: str) -> str:
    """``format_price`` in ``lang``, or its base language ("nl-BE" -> "nl"), or English."""
    for code in dict.fromkeys((lang, re.split(r"[-_]", lang, maxsplit=1)[0].lower(), "en")):
        try:
            return format_price(amount, currency, code)
        except UnknownNameError:
            continue
    return format_price(amount, currency, "en")


class Box(NamedTuple):
    """A rectangle in pixels: top-left corner, width and height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def intersects(self, other: Box) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )


def px(value: float, scale: float) -> int:
    return max(1, round(value * scale))


def even(n: int) -> int:
    return n + n % 2


def rgba(image: Image.Image) -> U8:
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def rounded_mask(w: int, h: int, radius: int) -> Image.Image:
    """An anti-aliased rounded-rectangle mask; only the corner is drawn at 4x and reduced."""
    mask = Image.new("L", (w, h), 255)
    r = min(radius, w // 2, h // 2)
    if r <= 0:
        return mask
    k = 4
    disc = Image.new("L", (2 * r * k, 2 * r * k), 0)
    ImageDraw.Draw(disc).ellipse((0, 0, 2 * r * k - 1, 2 * r * k - 1), fill=255)
    corner = disc.resize((2 * r, 2 * r), Image.Resampling.BOX).crop((0, 0, r, r))
    flip = Image.Transpose
    mask.paste(corner, (0, 0))
    mask.paste(corner.transpose(flip.FLIP_LEFT_RIGHT), (w - r, 0))
    mask.paste(corner.transpose(flip.FLIP_TOP_BOTTOM), (0, h - r))
    mask.paste(corner.transpose(flip.ROTATE_180), (w - r, h - r))
    return mask


def soft_shadow(w: int, h: int, radius: int, blur: int, margin: int, drop: int) -> Image.Image:
    """A blurred rounded-rectangle alpha, blurred at quarter size (a shadow needs no detail)."""
    q = 4
    size = (w + 2 * margin, h + 2 * margin)
    small = Image.new("L", (-(-size[0] // q), -(-size[1] // q)), 0)
    small.paste(
        rounded_mask(max(1, w // q), max(1, h // q), max(0, radius // q)),
        (margin // q, (margin + drop) // q),
    )
    small = small.filter(ImageFilter.GaussianBlur(max(1, blur / q)))
    return small.resize(size, Image.Resampling.BILINEAR).point(lambda v: v * 110 // 255)


def line_height(font: Font) -> int:
    ascent, descent = font.getmetrics()
    return int(ascent + descent)


# --- text wrapping ------------------------------------------------------------------------------

# Spaces break lines, a no-break space (as inside "€ 84,99") does not; CJK breaks per character.
_CJK_CHARS = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(f"[{_CJK_CHARS}]|[^ \\t\\r\\n{_CJK_CHARS}]+|[ \\t\\r\\n]+")
_SPACES = re.compile(r"[ \t\r\n]+")


def wrap(text: str, font: Font, max_width: int) -> list[str]:
    """Greedy wrap by pixel width: words for Latin, characters for CJK, split over-long words."""
    lines: list[str] = []
    line = ""
    for token in _TOKEN.findall(_SPACES.sub(" ", text).strip()):
        candidate = line + token
        if font.getlength(candidate.rstrip()) <= max_width:
            line = candidate
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = "" if token.isspace() else token
        while font.getlength(line) > max_width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and font.getlength(line[:cut]) > max_width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


def fit_lines(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """At most ``max_lines`` wrapped lines; the last one ends in an ellipsis if text was cut."""
    lines = wrap(text, font, max_width)
    if len(lines) <= max_lines:
        return lines
    whole = " ".join(lines[max_lines - 1 :])
    rest = whole
    while rest and font.getlength(rest + "…") > max_width:
        rest = rest[:-1]
    if " " in rest and not whole[len(rest)].isspace():
        rest = rest[: rest.rindex(" ")]  # end on a whole word where there are words
    return [*lines[: max_lines - 1], rest.rstrip(" ,;:") + "…"]
