"""The programme picture: backdrop, avatar, product card, captions and, on top, the AI label.

Card and label are flattened onto the backdrop when they are made, so they are opaque copies.
With a renderer that exposes its poses (``LayeredRenderer``), a frame redraws only what
changed since its buffer was last drawn (``programme.layers``): a cached tile of the avatar's
body and head, the mouth, the caption blend; otherwise it costs one copy of the cached
backdrop, the renderer's draw, the card and label copies and the caption blend. Text is laid
out only when a product or a sentence changes, never per frame, and there is no float math per
frame.

Layout, scaled from the frame size: the avatar stands left of centre, the card fills the right
third, captions sit bottom-left under the avatar, and the label keeps its corner; card and
captions move aside so they never cover it. The label is drawn last on every frame and the
configuration can change its text, language and corner but cannot remove it.

A platform preset (``programme.layout.SafeZones``) moves the label, card and captions out of
the areas that app covers. A portrait frame follows its own plan (``programme.portrait``):
label and seller on top, the face below, the card as a row over the chest or a column beside
the presenter, and the captions above the app's comments.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from avatarcast.avatar.base import (
    AvatarRenderer,
    AvatarState,
    FullFrameRenderer,
    LayeredRenderer,
)
from avatarcast.avatar.base import Box as Rect
from avatarcast.catalog.model import Product
from avatarcast.errors import ConfigError
from avatarcast.programme.card import render_card, render_card_row
from avatarcast.programme.drawing import Box
from avatarcast.programme.layers import FrameLayers
from avatarcast.programme.layout import SafeZones, safe_zones
from avatarcast.programme.overlays import (
    LabelConfig,
    caption_max_height,
    label_text,
    render_caption,
    render_label,
    studio_background,
)
from avatarcast.programme.portrait import FaceMetrics, PortraitPlan, plan_portrait
from avatarcast.yuv import Blend, Sprite, YuvFrame

__all__ = ["Compositor", "LabelOverlay", "Placed", "RegionName", "SellerInfo", "portrait_plan"]

RegionName = Literal["label", "card", "caption", "avatar", "seller"]

_CARD_CACHE = 16
#: caption plates kept (uint8 sprites, ~0.18 MB each at 720p): sentences come round again
_CAPTION_CACHE = 64
#: captions kept with their blend terms (uint16, ~0.5 MB each at 720p): the one on air and
#: the one before it. Keeping 64 of those was 33 MB per 720p stream, reached after ~6 minutes.
_BLEND_CACHE = 2


@dataclass(frozen=True, slots=True)
class Placed:
    """A sprite and where its top-left corner goes in the frame."""

    sprite: Sprite
    x: int
    y: int

    @property
    def box(self) -> Box:
        return Box(self.x, self.y, self.sprite.width, self.sprite.height)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelOverlay:
    """Where the label is and what it looks like, so a test can find it in a decoded frame.

    ``box`` is the plate (with rounded corners of a few pixels), ``text_box`` the ink of its
    text, both in frame pixels.
    """

    text: str
    lang: str
    box: Box
    text_box: Box
    plate_rgb: tuple[int, int, int]
    text_rgb: tuple[int, int, int]


class PlanLike(Protocol):
    """What ``Compositor.__call__`` reads from a frame plan (``programme.FramePlan`` fits)."""

    @property
    def state(self) -> AvatarState: ...

    @property
    def product(self) -> Product | None: ...

    @property
    def caption(self) -> str | None: ...

    @property
    def slate(self) -> str | None:
        """A "back soon" message shown instead of the programme, or None."""
        ...


def _even(n: int) -> int:
    return n - n % 2


def _clip(sprite: Sprite, x: int, y: int, width: int, height: int) -> Placed:
    """The part of ``sprite`` at (x, y) that lies inside a ``width`` x ``height`` frame."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + sprite.width, width), min(y + sprite.height, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ConfigError(f"overlay at ({x}, {y}) lies outside the {width}x{height} frame")
    sx, sy, w, h = x0 - x, y0 - y, _even(x1 - x0), _even(y1 - y0)
    part = Sprite(
        sprite.y[sy : sy + h, sx : sx + w],
        sprite.u[sy // 2 : (sy + h) // 2, sx // 2 : (sx + w) // 2],
        sprite.v[sy // 2 : (sy + h) // 2, sx // 2 : (sx + w) // 2],
        sprite.a[sy : sy + h, sx : sx + w],
        sprite.a2[sy // 2 : (sy + h) // 2, sx // 2 : (sx + w) // 2],
        sprite.opaque,
    )
    return Placed(part, x0, y0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SellerInfo:
    """Who sells: shown on screen for the whole stream (live-commerce rules ask for it)."""

    name: str
    contact: str = ""

    def line(self, lang: str) -> str:
        word = {"nl": "Verkoper", "zh": "商家"}.get(lang, "Seller")
        return f"{word}: {self.name}" + (f" · {self.contact}" if self.contact else "")


class Compositor:
    """Composes programme frames in yuv420p. One instance per compose thread (scratch buffers)."""

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        lang: str = "en",
        renderer: AvatarRenderer,
        background: Sprite | None = None,
        label: LabelConfig | None = None,
        seller: SellerInfo | None = None,
        cache: bool = True,
        safe: SafeZones | None = None,
        portrait: PortraitPlan | None = None,
    ) -> None:
        if width % 2 or height % 2 or min(width, height) < 180 or max(width, height) < 320:
            raise ConfigError(f"frame size {width}x{height} must be even and at least 320x180")
        self.width, self.height, self.lang = width, height, lang
        self._renderer = renderer
        self.safe = safe if safe is not None else safe_zones("none", width, height)
        self._portrait = portrait
        if portrait is not None:
            self.scale = portrait.scale
            self._margin, self._gap = portrait.margin, portrait.gap
        else:
            self.scale = min(width / 1280, height / 720)
            self._margin = _even(round(28 * self.scale)) or 2
            self._gap = _even(round(20 * self.scale)) or 2
        self._plain = self._backdrop(background)  # drawn once: a restyle only copies it
        self._cache = cache
        self._fills = isinstance(renderer, FullFrameRenderer) and renderer.fills_frame()
        self._setup(label or LabelConfig(), seller)

    def _setup(self, label: LabelConfig, seller: SellerInfo | None) -> None:
        """Lay out the frame for this label and seller; every cached layer is drawn anew."""
        self._base = self._plain.copy()
        self.label_config = label
        self.label, self._label = self._make_label(label)
        portrait = self._portrait
        self._regions = (
            self._portrait_regions(portrait) if portrait else self._layout(self.label.box)
        )
        self.seller = seller
        self._seller: Placed | None = None
        if seller is not None:
            self._place_seller(seller)
        self._check_clear()
        self._cards: OrderedDict[tuple[object, ...], Placed] = OrderedDict()
        self._captions: OrderedDict[str, Placed] = OrderedDict()
        self._blends: OrderedDict[str, Blend] = OrderedDict()
        self._last_product: Product | None = None
        self._last_card: Placed | None = None
        self._slates: dict[str, YuvFrame] = {}
        renderer = self._renderer
        layered = self._cache and isinstance(renderer, LayeredRenderer)
        self._layers = (
            FrameLayers(renderer, self.width, self.height)  # type: ignore[arg-type]
            if layered
            else None
        )

    def restyle(
        self, *, label: LabelConfig | None = None, seller: SellerInfo | bool | None = True
    ) -> None:
        """A new label and/or seller panel from the next frame composed (``seller=True``:
        keep it, None: remove it). Call between frames, never during a compose."""
        self._setup(
            label if label is not None else self.label_config,
            self.seller if seller is True else (seller or None),
        )

    # --- per frame ------------------------------------------------------------------------

    def compose(
        self, out: YuvFrame, *, state: AvatarState, product: Product | None, caption: str | None
    ) -> None:
        """Draw one frame into ``out``: backdrop, avatar, card, caption, then the label."""
        if out.width != self.width or out.height != self.height:
            raise ValueError(
                f"frame is {out.width}x{out.height}, compositor is {self.width}x{self.height}"
            )
        if self._layers is not None:
            self._compose_changes(self._layers, out, state, product, caption)
            return
        if self._fills:  # a twin: the backdrop would be painted over (1.4 MB a frame at 720p)
            self._renderer.draw(out, state)
            if self._seller is not None:
                out.blit(self._seller.sprite, self._seller.x, self._seller.y)
        else:
            np.copyto(out.buf, self._base.buf)
            self._renderer.draw(out, state)
        if product is not None:
            card = self.card_for(product)
            out.blit(card.sprite, card.x, card.y)
        if caption:
            self._caption(caption).draw(out)
        out.blit(self._label.sprite, self._label.x, self._label.y)

    def _compose_changes(
        self,
        layers: FrameLayers,
        out: YuvFrame,
        state: AvatarState,
        product: Product | None,
        caption: str | None,
    ) -> None:
        """The same frame as drawing every layer, redrawing only what changed in ``out``."""
        card = self.card_for(product) if product is not None else None
        static = layers.static(card, lambda: self._static_frame(card))
        pose = self._renderer.pose(state)  # type: ignore[attr-defined]
        present = layers.restore(out, static, pose)
        drawn, tile = layers.draw_avatar(out, static, pose, present)
        if caption:
            blend = self._caption(caption)
            blend.draw(out)
            box = (blend.x, blend.y, blend.w, blend.h)
            layers.put_back_label(out, static, box)
            drawn.append(box)
        layers.remember(out, static, drawn, tile)

    def _static_frame(
        self, card: Placed | None
    ) -> tuple[YuvFrame, list[tuple[int, int, int, int]]]:
        """Backdrop, card and label: what every frame shows under and around the avatar."""
        static = self._base.copy()
        opaque: list[Rect] = []
        if card is not None:
            static.blit(card.sprite, card.x, card.y)
            opaque.append(card.box)
        static.blit(self._label.sprite, self._label.x, self._label.y)
        opaque.append(self._label.box)  # last: see FrameLayers.put_back_label
        return static, opaque

    def __call__(self, plan: PlanLike, out: YuvFrame) -> None:
        """Compose a frame plan; fits ``pipeline.frame_loop.Compose``."""
        if plan.slate:
            self.compose_slate(out, plan.slate)
            return
        self.compose(out, state=plan.state, product=plan.product, caption=plan.caption)

    def compose_slate(self, out: YuvFrame, text: str) -> None:
        """A "back soon" slate: the backdrop, one centred message, and the AI label on top."""
        cached = self._slates.get(text)
        if cached is None:
            cached = self._base.copy()
            plate = Sprite.from_rgba(
                render_caption(text, max_width=self.width * 2 // 3, scale=self.scale * 1.6)
            )
            cached.blit(plate, (self.width - plate.width) // 2, (self.height - plate.height) // 2)
            self._slates[text] = cached
        np.copyto(out.buf, cached.buf)
        out.blit(self._label.sprite, self._label.x, self._label.y)
        if self._layers is not None:
            self._layers.forget(out)

    # --- geometry -------------------------------------------------------------------------

    def region_of(self, name: RegionName) -> Box:
        """The box reserved for "label", "card", "caption" or "avatar", in frame pixels."""
        if name not in self._regions:
            raise KeyError(f"no region {name!r}; regions: {', '.join(self._regions)}")
        return self._regions[name]

    def _layout(self, label: Box) -> dict[str, Box]:
        w, h, m, gap = self.width, self.height, self._margin, self._gap
        clear_top, clear_bottom = self.safe.clear_top, self.safe.clear_bottom
        card_w = _even(round(w / 3) - m)
        card_x = w - m - card_w
        top, bottom = clear_top + m, clear_bottom - m
        if Box(card_x, 0, card_w, h).intersects(label):
            if label.y + label.h // 2 < h // 2:
                top = label.bottom + gap
            else:
                bottom = label.y - gap
        cap_h = caption_max_height(self.scale)
        cap_x, cap_w = m, card_x - gap - m
        cap_bottom = clear_bottom - m
        if Box(cap_x, cap_bottom - cap_h, cap_w, cap_h).intersects(label):
            cap_bottom = label.y - gap
        if self.safe.hits(Box(cap_x, cap_bottom - cap_h, cap_w, cap_h)):
            # an app's comments in the lower left: beside them if there is room, else above
            x0, x1 = self.safe.free_span(cap_bottom - cap_h, cap_bottom)
            left, right = max(cap_x, x0 + m), min(cap_x + cap_w, x1 - m)
            if right - left >= w // 4:
                cap_x, cap_w = left, right - left
            for _, area in self.safe.covered:
                if Box(cap_x, cap_bottom - cap_h, cap_w, cap_h).intersects(area):
                    cap_bottom = min(cap_bottom, area.y - gap)
        return {
            "label": label,
            "card": Box(card_x, top, card_w, bottom - top),
            "caption": Box(cap_x, cap_bottom - cap_h, cap_w, cap_h),
            "avatar": Box(0, 0, card_x - gap, h),
        }

    def _portrait_regions(self, plan: PortraitPlan) -> dict[str, Box]:
        return {
            "label": self.label.box,
            "card": plan.card,
            "caption": plan.caption,
            "avatar": Box(0, plan.framing.y, self.width, self.height - plan.framing.y),
        }

    def _check_clear(self) -> None:
        """Label, card, captions and seller must stay out of the preset's covered areas."""
        for name in ("label", "card", "caption", "seller"):
            box = self._regions.get(name)
            hits = self.safe.hits(box) if box is not None else []
            if hits:
                raise ConfigError(
                    f"the {name} at {tuple(box or ())} falls under the {self.safe.preset} "
                    f"interface ({', '.join(hits)}) in a {self.width}x{self.height} frame"
                )

    def _place_seller(self, seller: SellerInfo) -> None:
        """Bake the seller panel into the backdrop under the card column (it never changes);
        over a renderer that fills the frame it is blended onto each frame instead."""
        text = seller.line(self.lang)
        if self._portrait is not None:
            slot = self._portrait.seller  # under the label, on its side
            plate = render_caption(text, max_width=slot.w, scale=self.scale * 0.7)
            sprite = Sprite.from_rgba(plate)
            left = self.label.box.x - slot.x < slot.right - self.label.box.right
            x = slot.x if left else slot.right - sprite.width
            y = slot.y + (slot.h - sprite.height) // 2
            x, y = x - x % 2, y - y % 2
            self._base.blit(sprite, x, y)
            self._seller = Placed(sprite, x, y)  # over a renderer that fills the frame
            self._regions["seller"] = Box(x, y, sprite.width, sprite.height)
            return
        card = self._regions["card"]
        sprite = Sprite.from_rgba(render_caption(text, max_width=card.w, scale=self.scale * 0.7))
        x = card.x + (card.w - sprite.width) // 2
        y = card.bottom - sprite.height
        self._base.blit(sprite, x, y)
        self._seller = Placed(sprite, x, y)
        self._regions["seller"] = Box(x - x % 2, y - y % 2, sprite.width, sprite.height)
        self._regions["card"] = Box(card.x, card.y, card.w, card.h - sprite.height - self._gap)

    # --- cached layers --------------------------------------------------------------------

    def _backdrop(self, background: Sprite | None) -> YuvFrame:
        base = YuvFrame(self.width, self.height)
        hidden = (  # under the avatar's own backdrop, whole: not drawn (0.03 CPU s at 720p)
            background is not None
            and background.opaque
            and (background.width, background.height) == (self.width, self.height)
        )
        if not hidden:
            base.blit(Sprite.from_rgba(studio_background(self.width, self.height)), 0, 0)
        if background is not None:
            x = (self.width - background.width) // 2
            y = (self.height - background.height) // 2
            base.blit(background, x, y)
        return base

    def _flatten(self, sprite: Sprite, x: int, y: int) -> Placed:
        """``sprite`` blended onto the backdrop once, so each frame only copies it."""
        part = _clip(sprite, x - x % 2, y - y % 2, self.width, self.height)
        px, py, pw, ph = part.x, part.y, part.sprite.width, part.sprite.height
        tile = YuvFrame(pw, ph)
        tile.y[...] = self._base.y[py : py + ph, px : px + pw]
        tile.u[...] = self._base.u[py // 2 : (py + ph) // 2, px // 2 : (px + pw) // 2]
        tile.v[...] = self._base.v[py // 2 : (py + ph) // 2, px // 2 : (px + pw) // 2]
        tile.blit(part.sprite, 0, 0)
        a = np.full((ph, pw), 255, np.uint8)
        a2 = np.full((ph // 2, pw // 2), 255, np.uint8)
        flat = Sprite(tile.y.copy(), tile.u.copy(), tile.v.copy(), a, a2, True)
        return Placed(flat, px, py)

    def _make_label(self, config: LabelConfig) -> tuple[LabelOverlay, Placed]:
        lang = config.lang or self.lang
        text = config.text or label_text(lang)
        m = self._margin
        max_w = self.width - 2 * m
        if self._portrait is not None:
            max_w = self._portrait.label_max_width
        image = render_label(
            text, frame_width=self.width, frame_height=self.height, max_width=max_w
        )
        lh, lw = image.rgba.shape[:2]
        left = config.position.endswith("left")
        top = config.position.startswith("top")
        if self._portrait is not None:
            x, y = self._portrait.label_xy
        else:
            y = self.safe.clear_top + m if top else self.safe.clear_bottom - m - lh
            x0, x1 = self.safe.free_span(y, y + lh)
            x = x0 + m if left else x1 - m - lw
        placed = self._flatten(Sprite.from_rgba(image.rgba), x, y)
        tb = image.text_box
        overlay = LabelOverlay(
            text=text,
            lang=lang,
            box=placed.box,
            text_box=Box(placed.x + tb.x, placed.y + tb.y, tb.w, tb.h),
            plate_rgb=image.plate_rgb,
            text_rgb=image.text_rgb,
        )
        return overlay, placed

    def render_card(self, product: Product) -> Placed:
        """A freshly drawn card for ``product``, flattened and placed (no cache)."""
        slot = self._regions["card"]
        if self._portrait is not None and not self._portrait.card_beside:
            card = render_card_row(
                product, lang=self.lang, width=slot.w, height=slot.h, scale=self.scale
            )
            return self._flatten(
                Sprite.from_rgba(card.rgba), slot.x - card.panel.x, slot.y - card.panel.y
            )
        # a column beside a portrait presenter is narrower than the landscape one: smaller type
        scale = self.scale * (0.82 if self._portrait is not None else 1.0)
        card = render_card(product, lang=self.lang, width=slot.w, max_height=slot.h, scale=scale)
        panel = card.panel
        y = slot.y + (slot.h - panel.h) // 2
        return self._flatten(Sprite.from_rgba(card.rgba), slot.x - panel.x, y - panel.y)

    def card_for(self, product: Product) -> Placed:
        """The card for ``product``, drawn once per distinct content (price, stock, title...)."""
        if product is self._last_product and self._last_card is not None:
            return self._last_card
        key = self._card_key(product)
        card = self._cards.get(key)
        if card is None:
            card = self._cards[key] = self.render_card(product)
            if len(self._cards) > _CARD_CACHE:
                self._cards.popitem(last=False)
        else:
            self._cards.move_to_end(key)
        self._last_product, self._last_card = product, card
        return card

    def _card_key(self, product: Product) -> tuple[object, ...]:
        stamp: tuple[int, int] | None = None
        if product.image and "://" not in product.image:
            try:
                st = os.stat(product.image)
                stamp = (st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
        return (
            product.id,
            product.title_in(self.lang),
            product.brand,
            product.currency,
            product.price,
            product.sale_price,
            product.prior_lowest_price,
            product.availability,
            product.stock,
            product.image,
            stamp,
        )

    def caption_for(self, text: str) -> Placed:
        """The caption plate for ``text`` and where it goes (bottom-aligned in its region)."""
        region = self._regions["caption"]
        sprite = Sprite.from_rgba(render_caption(text, max_width=region.w, scale=self.scale))
        x = region.x + (region.w - sprite.width) // 2
        y = region.bottom - sprite.height
        return Placed(sprite, x - x % 2, y - y % 2)

    def _caption(self, text: str) -> Blend:
        blend = self._blends.get(text)
        if blend is not None:
            self._blends.move_to_end(text)
            return blend
        clipped = self._captions.get(text)
        if clipped is None:
            placed = self.caption_for(text)
            clipped = _clip(placed.sprite, placed.x, placed.y, self.width, self.height)
            self._captions[text] = clipped
            if len(self._captions) > _CAPTION_CACHE:
                self._captions.popitem(last=False)
        else:
            self._captions.move_to_end(text)
        blend = self._blends[text] = Blend(clipped.sprite, clipped.x, clipped.y)
        if len(self._blends) > _BLEND_CACHE:
            self._blends.popitem(last=False)
        return blend


def portrait_plan(
    *,
    width: int,
    height: int,
    lang: str,
    label: LabelConfig,
    safe: SafeZones,
    seller: bool,
    face: FaceMetrics,
) -> PortraitPlan:
    """The portrait plan for a frame: measures the label and the captions it must make room
    for (the avatar renderer is framed from it before the compositor is made)."""
    scale = width / 720
    m = _even(round(28 * scale)) or 2
    text = label.text or label_text(label.lang or lang)
    row = round(180 * scale)  # the most a two-line label can take
    if label.position.startswith("top"):
        x0, x1 = safe.free_span(safe.clear_top, safe.clear_top + row)
    else:
        x0, x1 = safe.free_span(safe.clear_bottom - row, safe.clear_bottom)
    max_w = x1 - x0 - 2 * m
    image = render_label(text, frame_width=width, frame_height=height, max_width=max_w)
    lh, lw = image.rgba.shape[:2]
    return plan_portrait(
        label_max_width=max_w,
        width=width,
        height=height,
        safe=safe,
        label_size=(lw, lh),
        label_top=label.position.startswith("top"),
        label_left=label.position.endswith("left"),
        caption_h=caption_max_height(scale),
        seller_h=_seller_height(scale) if seller else 0,
        face=face,
    )


def _seller_height(scale: float) -> int:
    """One line of the seller panel (``render_caption`` at 0.7 of the caption size)."""
    return int(render_caption("Seller", max_width=10_000, scale=scale * 0.7).shape[0])
