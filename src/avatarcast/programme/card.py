"""The product card, drawn once per product version with Pillow: image, brand, title, price, stock.

Pure like the other overlays: a product in, an RGBA array with its drop shadow out; the
compositor caches it as a sprite. The card is a column of blocks, each a height and a painter;
when the column is too tall the image shrinks (or goes), then the title loses lines. A portrait
frame has no room for a column: ``render_card_row`` lays the same facts out as one compact row
(image, brand and title over availability, the price on the right) for a phone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from avatarcast.catalog.model import Product
from avatarcast.programme.drawing import (
    RGB,
    U8,
    Box,
    Font,
    even,
    fit_lines,
    line_height,
    phrase,
    price_text,
    px,
    rgba,
    rounded_mask,
    soft_shadow,
)
from avatarcast.programme.fonts import Style, font_for

__all__ = ["CardImage", "render_card", "render_card_row"]

log = logging.getLogger(__name__)

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
    sample = title + phrase(lang, "lowest", price="") + phrase(lang, "in_stock")

    def f(size: float, text: str, style: Style = "regular") -> Font:
        return font_for(text, px(size, scale), style=style)

    return _Fonts(
        brand=f(16, product.brand, "bold"),
        title=f(26, title, "bold"),
        big=f(50, "0", "bold"),
        old=f(24, "0"),
        small=f(17, sample),
        avail=f(19, sample),
        tag=f(15, phrase(lang, "sale"), "bold"),
    )


def _text_block(
    lines: list[str], font: Font, fill: RGB, x: int, gap: float = 1.06
) -> tuple[int, Draw]:
    step = round(line_height(font) * gap)
    ascent = font.getmetrics()[0]

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        for i, line in enumerate(lines):
            d.text((x, y + i * step + ascent), line, font=font, fill=fill, anchor="ls")

    return step * len(lines), draw


def _price_block(
    product: Product, lang: str, fonts: _Fonts, x: int, inner: int, s: float
) -> tuple[int, Draw]:
    price = price_text(product.current_price, product.currency, lang)
    regular = price_text(product.price, product.currency, lang) if product.sale_price else None
    colour = _ACCENT if regular else _INK
    big_h, old_h = line_height(fonts.big), line_height(fonts.old)
    gap = px(14, s)
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
            width=max(2, px(2, s)),
        )

    return height, draw


def _tag_block(text: str, font: Font, x: int, s: float) -> tuple[int, Draw]:
    pad_x, pad_y = px(8, s), px(4, s)
    ink = font.getbbox(text, anchor="ls")
    h = int(ink[3] - ink[1]) + 2 * pad_y
    w = math.ceil(font.getlength(text)) + 2 * pad_x

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        d.rounded_rectangle((x, y, x + w, y + h), radius=px(4, s), fill=_ACCENT)
        d.text((x + pad_x, y + pad_y - ink[1]), text, font=font, fill=(255, 255, 255), anchor="ls")

    return h, draw


def _availability_block(
    product: Product, lang: str, font: Font, x: int, s: float
) -> tuple[int, Draw]:
    kind: str = product.availability
    if kind == "in_stock" and product.stock == 0:
        kind = "out_of_stock"
    if kind == "in_stock" and product.stock is not None:
        text = phrase(lang, "in_stock_n", n=product.stock)
    else:
        text = phrase(lang, kind)
    dot = px(11, s)
    ascent = font.getmetrics()[0]
    mid = ascent - round(font.size * 0.36)

    def draw(d: ImageDraw.ImageDraw, _: Image.Image, y: int) -> None:
        d.ellipse(
            (x, y + mid - dot // 2, x + dot, y + mid - dot // 2 + dot), fill=_AVAILABILITY_RGB[kind]
        )
        d.text((x + dot + px(9, s), y + ascent), text, font=font, fill=_INK, anchor="ls")

    return line_height(font), draw


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
        pad = px(10, s)
        fitted = ImageOps.contain(image, (max(1, w - 2 * pad), max(1, h - 2 * pad)))
        well.alpha_composite(fitted, ((w - fitted.width) // 2, (h - fitted.height) // 2))
        canvas.paste(well, (x, y), rounded_mask(w, h, px(10, s)))

    return h, draw


def _card_blocks(
    product: Product, lang: str, width: int, s: float, image_h: int, title_lines: int
) -> list[tuple[int, Draw]]:
    pad = px(22, s)
    inner = width - 2 * pad
    fonts = _fonts(product, lang, s)
    blocks: list[tuple[int, Draw]] = []
    image = _load_image(product.image) if image_h > 0 else None
    if image is not None:
        blocks += [_image_block(image, pad, inner, image_h, s), _gap(px(16, s))]
    title = fit_lines(product.title_in(lang), fonts.title, inner, title_lines)
    blocks += [
        _text_block([product.brand.upper()], fonts.brand, _MUTED, pad),
        _gap(px(4, s)),
        _text_block(title, fonts.title, _INK, pad),
        _gap(px(14, s)),
        _rule(pad, inner, px(2, s)),
        _gap(px(14, s)),
    ]
    if product.sale_price is not None:
        blocks += [_tag_block(phrase(lang, "sale"), fonts.tag, pad, s), _gap(px(8, s))]
    blocks.append(_price_block(product, lang, fonts, pad, inner, s))
    if product.sale_price is not None and product.prior_lowest_price is not None:
        lowest = price_text(product.prior_lowest_price, product.currency, lang)
        lowest = lowest.replace(" ", "\u00a0")
        lines = fit_lines(phrase(lang, "lowest", price=lowest), fonts.small, inner, 2)
        blocks += [_gap(px(6, s)), _text_block(lines, fonts.small, _MUTED, pad)]
    blocks += [_gap(px(16, s)), _availability_block(product, lang, fonts.avail, pad, s)]
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
    image_h = round((width - 2 * px(22, s)) * 0.62) if has_image else 0
    min_image = px(70, s)
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
    height = even(min(height, max_height))
    width = even(width)
    panel = Image.new("RGBA", (width, height), (*_PANEL, 255))
    draw = ImageDraw.Draw(panel)
    y = 0
    for h, paint in blocks:
        paint(draw, panel, y)
        y += h
    panel.putalpha(rounded_mask(width, height, px(16, s)))
    margin, drop = even(px(20, s)), px(6, s)
    shadow_alpha = soft_shadow(width, height, px(16, s), px(9, s), margin, drop)
    out = Image.new("RGBA", shadow_alpha.size, (0, 0, 0, 0))
    out.putalpha(shadow_alpha)
    out.alpha_composite(panel, (margin, margin))
    return CardImage(rgba=rgba(out), panel=Box(margin, margin, width, height))


def render_card_row(
    product: Product, *, lang: str, width: int, height: int, scale: float
) -> CardImage:
    """The product card as one row ``width`` x ``height``: image, brand, title, availability
    on the left, the price block (with the sale tag and the old price) on the right."""
    s = scale
    width, height = even(width), even(height)
    pad = px(16, s)
    fonts = _fonts(product, lang, s * 0.82)
    panel = Image.new("RGBA", (width, height), (*_PANEL, 255))
    draw = ImageDraw.Draw(panel)
    x = pad
    image = _load_image(product.image)
    if image is not None:
        side = height - 2 * pad
        _image_block(image, x, side, side, s)[1](draw, panel, pad)
        x += side + pad
    price = price_text(product.current_price, product.currency, lang)
    regular = price_text(product.price, product.currency, lang) if product.sale_price else None
    price_w = math.ceil(max(fonts.big.getlength(price), fonts.old.getlength(regular or "")))
    right = width - pad - price_w
    inner = max(1, right - pad - x)
    title = fit_lines(product.title_in(lang), fonts.title, inner, 1)
    blocks = [
        _text_block([product.brand.upper()], fonts.brand, _MUTED, x),
        _gap(px(2, s)),
        _text_block(title, fonts.title, _INK, x),
        _gap(px(6, s)),
        _availability_block(product, lang, fonts.avail, x, s * 0.82),
    ]
    y = (height - sum(h for h, _ in blocks)) // 2
    for h, paint in blocks:
        paint(draw, panel, y)
        y += h
    ph, paint = _price_block(product, lang, fonts, right, price_w, s)
    tag_h = 0
    if regular is not None:
        tag_h, tag = _tag_block(phrase(lang, "sale"), fonts.tag, right, s * 0.82)
        tag_h += px(4, s)
    y = (height - ph - tag_h) // 2
    if regular is not None:
        tag(draw, panel, y)
    paint(draw, panel, y + tag_h)
    panel.putalpha(rounded_mask(width, height, px(14, s)))
    margin, drop = even(px(14, s)), px(4, s)
    shadow_alpha = soft_shadow(width, height, px(14, s), px(7, s), margin, drop)
    out = Image.new("RGBA", shadow_alpha.size, (0, 0, 0, 0))
    out.putalpha(shadow_alpha)
    out.alpha_composite(panel, (margin, margin))
    return CardImage(rgba=rgba(out), panel=Box(margin, margin, width, height))
