"""Overlays drawn once with Pillow: the AI label, the product card, captions, the studio backdrop.

Every function here is pure: inputs in, an RGBA (or RGB) array out. The compositor converts the
result into a ``Sprite`` once and caches it, so no frame ever pays for text layout. Sizes are
given at 720p and multiplied by ``scale`` (the frame's size relative to 1280x720).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from avatarcast.catalog.model import Product
from avatarcast.errors import ConfigError, UnknownNameError
from avatarcast.locale import format_price
from avatarcast.programme.fonts import Style, font_for

__all__ = [
    "CORNERS",
    "LABEL_MIN_TEXT_FRACTION",
    "LABEL_PLATE_RGB",
    "LABEL_TEXT_RGB",
    "Box",
    "CardImage",
    "Corner",
    "LabelConfig",
    "LabelImage",
    "caption_max_height",
    "label_text",
    "render_caption",
    "render_card",
    "render_label",
    "studio_background",
]

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = get_args(Corner)

LABEL_MIN_TEXT_FRACTION = 0.05
"""The label's text ink is at least this share of the frame's shorter side."""
LABEL_PLATE_RGB: RGB = (14, 14, 18)
LABEL_TEXT_RGB: RGB = (255, 255, 255)

_INK = (17, 24, 39)
_MUTED = (95, 104, 118)
_ACCENT = (214, 34, 52)
_PANEL = (252, 252, 253)
_AVAILABILITY_RGB: dict[str, RGB] = {
    "in_stock": (22, 150, 70),
    "out_of_stock": (214, 34, 52),
    "preorder": (210, 120, 10),
    "backorder": (210, 120, 10),
}

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


def _t(lang: str, key: str, **values: object) -> str:
    return _STRINGS[_lang_key(lang)][key].format(**values)


def _price(amount: Decimal, currency: str, lang: str) -> str:
    """``format_price`` in ``lang``, or its base language ("nl-BE" -> "nl"), or English."""
    for code in dict.fromkeys((lang, re.split(r"[-_]", lang, maxsplit=1)[0].lower(), "en")):
        try:
            return format_price(amount, currency, code)
        except UnknownNameError:
            continue
    return format_price(amount, currency, "en")


def label_text(lang: str) -> str:
    """The default AI-disclosure text for ``lang`` ("nl-NL" counts as "nl"); English if unknown."""
    return _t(lang, "label")


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


def _px(value: float, scale: float) -> int:
    return max(1, round(value * scale))


def _even(n: int) -> int:
    return n + n % 2


def _rgba(image: Image.Image) -> U8:
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def _rounded_mask(w: int, h: int, radius: int) -> Image.Image:
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


def _soft_shadow(w: int, h: int, radius: int, blur: int, margin: int, drop: int) -> Image.Image:
    """A blurred rounded-rectangle alpha, blurred at quarter size (a shadow needs no detail)."""
    q = 4
    size = (w + 2 * margin, h + 2 * margin)
    small = Image.new("L", (-(-size[0] // q), -(-size[1] // q)), 0)
    small.paste(
        _rounded_mask(max(1, w // q), max(1, h // q), max(0, radius // q)),
        (margin // q, (margin + drop) // q),
    )
    small = small.filter(ImageFilter.GaussianBlur(max(1, blur / q)))
    return small.resize(size, Image.Resampling.BILINEAR).point(lambda v: v * 110 // 255)


def _line_height(font: Font) -> int:
    ascent, descent = font.getmetrics()
    return int(ascent + descent)


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
    a little headroom so a video encoder's blur cannot take the text under the floor.
    """
    short = min(frame_width, frame_height)
    target = math.ceil(short * LABEL_MIN_TEXT_FRACTION * 1.1)
    style: Style = "condensed-bold"
    size = target
    font = font_for(text, size, style=style)
    ink = _ink_box(text, font)
    while ink.h < target and size < 4 * target:
        size += max(1, (target - ink.h) // 2)
        font = font_for(text, size, style=style)
        ink = _ink_box(text, font)
    pad_y = max(4, round(ink.h * 0.32))
    pad_x = max(6, round(ink.h * 0.5))
    w, h = _even(ink.w + 2 * pad_x), _even(ink.h + 2 * pad_y)
    limit = max_width if max_width is not None else frame_width
    if w > limit:
        raise ConfigError(f"label text {text!r} needs {w} px but the frame allows {limit} px")
    plate = Image.new("RGB", (w, h), LABEL_PLATE_RGB)
    ox, oy = (w - ink.w) // 2, (h - ink.h) // 2
    ImageDraw.Draw(plate).text((ox - ink.x, oy - ink.y), text, font=font, fill=LABEL_TEXT_RGB)
    plate.putalpha(_rounded_mask(w, h, round(h * 0.14)))
    return LabelImage(
        rgba=_rgba(plate),
        text_box=Box(ox, oy, ink.w, ink.h),
        plate_rgb=LABEL_PLATE_RGB,
        text_rgb=LABEL_TEXT_RGB,
    )


# --- text wrapping ------------------------------------------------------------------------------

# Spaces break lines, a no-break space (as inside "€ 84,99") does not; CJK breaks per character.
_CJK_CHARS = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(f"[{_CJK_CHARS}]|[^ \\t\\r\\n{_CJK_CHARS}]+|[ \\t\\r\\n]+")
_SPACES = re.compile(r"[ \t\r\n]+")


def _wrap(text: str, font: Font, max_width: int) -> list[str]:
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


def _fit_lines(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """At most ``max_lines`` wrapped lines; the last one ends in an ellipsis if text was cut."""
    lines = _wrap(text, font, max_width)
    if len(lines) <= max_lines:
        return lines
    whole = " ".join(lines[max_lines - 1 :])
    rest = whole
    while rest and font.getlength(rest + "…") > max_width:
        rest = rest[:-1]
    if " " in rest and not whole[len(rest)].isspace():
        rest = rest[: rest.rindex(" ")]  # end on a whole word where there are words
    return [*lines[: max_lines - 1], rest.rstrip(" ,;:") + "…"]


# --- captions -----------------------------------------------------------------------------------

CAPTION_PLATE_RGBA = (10, 12, 18, 188)


def _caption_metrics(scale: float) -> tuple[int, int, int, int]:
    """Base font size, smallest font size, horizontal and vertical padding."""
    size = _px(30, scale)
    return size, max(8, round(size * 0.72)), round(size * 0.7), round(size * 0.38)


def caption_max_height(scale: float) -> int:
    """The tallest a caption plate gets: two lines at the base size."""
    size, _, _, pad_y = _caption_metrics(scale)
    font = font_for("Hg", size)
    return _even(2 * round(_line_height(font) * 1.08) + 2 * pad_y)


def render_caption(text: str, *, max_width: int, scale: float) -> U8:
    """Text on a semi-opaque plate, wrapped to at most two lines, never wider than ``max_width``.

    A long sentence first gets a smaller font; if two lines still cannot hold it at the smallest
    size, the second line ends in an ellipsis.
    """
    base, smallest, pad_x, pad_y = _caption_metrics(scale)
    inner = max(1, max_width - 2 * pad_x)
    size, lines = base, _wrap(text, font_for(text, base), inner)
    while len(lines) > 2 and size > smallest:
        size = max(smallest, size - max(1, base // 15))
        lines = _wrap(text, font_for(text, size), inner)
    font = font_for(text, size)
    if len(lines) > 2:
        lines = _fit_lines(text, font, inner, 2)
    lines = lines or [""]
    step = round(_line_height(font) * 1.08)
    ascent = font.getmetrics()[0]
    text_w = max(math.ceil(font.getlength(line)) for line in lines)
    w = _even(min(max_width, text_w + 2 * pad_x))
    h = _even(step * len(lines) + 2 * pad_y)
    r, g, b, alpha = CAPTION_PLATE_RGBA
    plate = Image.new("RGBA", (w, h), (r, g, b, 0))
    plate.putalpha(_rounded_mask(w, h, round(size * 0.4)).point(lambda v: v * alpha // 255))
    draw = ImageDraw.Draw(plate)
    for i, line in enumerate(lines):
        x = (w - font.getlength(line)) / 2
        draw.text(
            (x, pad_y + i * step + ascent), line, font=font, fill=(255, 255, 255), anchor="ls"
        )
    return _rgba(plate)


# --- the product card ---------------------------------------------------------------------------

Draw = Callable[[ImageDraw.ImageDraw, Image.Image, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class CardImage:
    """The card with its drop shadow; ``panel`` is the card itself inside the image."""

    rgba: U8
    panel: Box


@dataclass(frozen=True, slots=True)
class _Fonts:
    brand: Font
    title: Font
    big: Font
    old: Font
    small: Font
    avail: Font
    tag: Font


def _fonts(product: Product, lang: str, scale: float) -> _Fonts:
    title = product.title_in(lang)
    sample = title + _t(lang, "lowest", price="") + _t(lang, "in_stock")

    def f(size: float, text: str, style: Style = "regular") -> Font:
        return font_for(text, _px(size, scale), style=style)

    return _Fonts(
        brand=f(16, product.brand, "bold"),
        title=f(26, title, "bold"),
        big=f(50, "0", "bold"),
        old=f(24, "0"),
        small=f(17, sample),
        avail=f(19, sample),
        tag=f(15, _t(lang, "sale"), "bold"),
    )


def _text_block(
    lines: list[str], font: Font, fill: RGB, x: int, gap: float = 1.06
) -> tuple[int, Draw]:
    step = round(_line_height(font) * gap)
    ascent = font.getmetrics()[0]

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        for i, line in enumerate(lines):
            d.text((x, y + i * step + ascent), line, font=font, fill=fill, anchor="ls")

    return step * len(lines), draw


def _price_block(
    product: Product, lang: str, fonts: _Fonts, x: int, inner: int, s: float
) -> tuple[int, Draw]:
    price = _price(product.current_price, product.currency, lang)
    regular = _price(product.price, product.currency, lang) if product.sale_price else None
    colour = _ACCENT if regular else _INK
    big_h, old_h = _line_height(fonts.big), _line_height(fonts.old)
    gap = _px(14, s)
    big_w = fonts.big.getlength(price)
    same_row = regular is not None and big_w + gap + fonts.old.getlength(regular) <= inner
    height = big_h + (old_h if regular and not same_row else 0)

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        base = y + fonts.big.getmetrics()[0]
        d.text((x, base), price, font=fonts.big, fill=colour, anchor="ls")
        if regular is None:
            return
        ox, ob = (x + big_w + gap, base) if same_row else (x, base + old_h)
        d.text((ox, ob), regular, font=fonts.old, fill=_MUTED, anchor="ls")
        strike_y = ob - round(fonts.old.size * 0.3)
        d.line(
            (ox - 1, strike_y, ox + fonts.old.getlength(regular) + 1, strike_y),
            fill=_MUTED,
            width=max(2, _px(2, s)),
        )

    return height, draw


def _tag_block(text: str, font: Font, x: int, s: float) -> tuple[int, Draw]:
    pad_x, pad_y = _px(8, s), _px(4, s)
    ink = font.getbbox(text, anchor="ls")
    h = int(ink[3] - ink[1]) + 2 * pad_y
    w = math.ceil(font.getlength(text)) + 2 * pad_x

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        d.rounded_rectangle((x, y, x + w, y + h), radius=_px(4, s), fill=_ACCENT)
        d.text((x + pad_x, y + pad_y - ink[1]), text, font=font, fill=(255, 255, 255), anchor="ls")

    return h, draw


def _availability_block(
    product: Product, lang: str, font: Font, x: int, s: float
) -> tuple[int, Draw]:
    kind: str = product.availability
    if kind == "in_stock" and product.stock == 0:
        kind = "out_of_stock"
    if kind == "in_stock" and product.stock is not None:
        text = _t(lang, "in_stock_n", n=product.stock)
    else:
        text = _t(lang, kind)
    dot = _px(11, s)
    ascent = font.getmetrics()[0]
    mid = ascent - round(font.size * 0.36)

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        d.ellipse(
            (x, y + mid - dot // 2, x + dot, y + mid - dot // 2 + dot), fill=_AVAILABILITY_RGB[kind]
        )
        d.text((x + dot + _px(9, s), y + ascent), text, font=font, fill=_INK, anchor="ls")

    return _line_height(font), draw


def _load_image(path: str | None) -> Image.Image | None:
    if not path or "://" in path:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with Image.open(p) as im:
            return im.convert("RGBA")
    except (OSError, ValueError) as exc:
        log.warning("product image %s cannot be read: %s", p, exc)
        return None


def _image_block(image: Image.Image, x: int, w: int, h: int, s: float) -> tuple[int, Draw]:
    def draw(_: ImageDraw.ImageDraw, canvas: Image.Image, y: int) -> None:
        well = Image.new("RGBA", (w, h), (241, 242, 245, 255))
        pad = _px(10, s)
        fitted = ImageOps.contain(image, (max(1, w - 2 * pad), max(1, h - 2 * pad)))
        well.alpha_composite(fitted, ((w - fitted.width) // 2, (h - fitted.height) // 2))
        canvas.paste(well, (x, y), _rounded_mask(w, h, _px(10, s)))

    return h, draw


def _card_blocks(
    product: Product, lang: str, width: int, s: float, image_h: int, title_lines: int
) -> list[tuple[int, Draw]]:
    pad = _px(22, s)
    inner = width - 2 * pad
    fonts = _fonts(product, lang, s)
    blocks: list[tuple[int, Draw]] = []
    image = _load_image(product.image) if image_h > 0 else None
    if image is not None:
        blocks += [_image_block(image, pad, inner, image_h, s), _gap(_px(16, s))]
    title = _fit_lines(product.title_in(lang), fonts.title, inner, title_lines)
    blocks += [
        _text_block([product.brand.upper()], fonts.brand, _MUTED, pad),
        _gap(_px(4, s)),
        _text_block(title, fonts.title, _INK, pad),
        _gap(_px(14, s)),
        _rule(pad, inner, _px(2, s)),
        _gap(_px(14, s)),
    ]
    if product.sale_price is not None:
        blocks += [_tag_block(_t(lang, "sale"), fonts.tag, pad, s), _gap(_px(8, s))]
    blocks.append(_price_block(product, lang, fonts, pad, inner, s))
    if product.sale_price is not None and product.prior_lowest_price is not None:
        lowest = _price(product.prior_lowest_price, product.currency, lang)
        lowest = lowest.replace(" ", "\u00a0")
        lines = _fit_lines(_t(lang, "lowest", price=lowest), fonts.small, inner, 2)
        blocks += [_gap(_px(6, s)), _text_block(lines, fonts.small, _MUTED, pad)]
    blocks += [_gap(_px(16, s)), _availability_block(product, lang, fonts.avail, pad, s)]
    return [_gap(pad), *blocks, _gap(pad)]


def _gap(h: int) -> tuple[int, Draw]:
    return h, lambda d, c, y: None


def _rule(x: int, w: int, h: int) -> tuple[int, Draw]:
    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        d.rectangle((x, y, x + w - 1, y + h - 1), fill=(228, 230, 235))

    return h, draw


def render_card(
    product: Product, *, lang: str, width: int, max_height: int, scale: float
) -> CardImage:
    """The product card ``width`` pixels wide: image, brand, title, price block, availability.

    When it would be taller than ``max_height`` the image shrinks (or goes), then the title
    loses lines.
    """
    s = scale
    has_image = _load_image(product.image) is not None
    image_h = round((width - 2 * _px(22, s)) * 0.62) if has_image else 0
    min_image = _px(70, s)
    title_lines = 3
    while True:
        blocks = _card_blocks(product, lang, width, s, image_h, title_lines)
        height = sum(h for h, _ in blocks)
        over = height - max_height
        if over <= 0:
            break
        if image_h > 0:
            image_h = image_h - over if image_h - over >= min_image else 0
        elif title_lines > 1:
            title_lines -= 1
        else:
            break
    height = _even(min(height, max_height))
    width = _even(width)
    panel = Image.new("RGBA", (width, height), (*_PANEL, 255))
    draw = ImageDraw.Draw(panel)
    y = 0
    for h, paint in blocks:
        paint(draw, panel, y)
        y += h
    panel.putalpha(_rounded_mask(width, height, _px(16, s)))
    margin, drop = _even(_px(20, s)), _px(6, s)
    shadow_alpha = _soft_shadow(width, height, _px(16, s), _px(9, s), margin, drop)
    out = Image.new("RGBA", shadow_alpha.size, (0, 0, 0, 0))
    out.putalpha(shadow_alpha)
    out.alpha_composite(panel, (margin, margin))
    return CardImage(rgba=_rgba(out), panel=Box(margin, margin, width, height))


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
