"""The portrait (9:16) layout, planned for a phone before anything is drawn.

On a phone the app's own interface covers the top band, the lower third (comments, the
product bag) and a rail on the right (``programme.layout.SafeZones``). So, from the top of
the clear band down: the AI label at its corner with the seller beside it; the presenter's
face, as large as fits between them and the card; a compact product card over the chest; the
captions just above the covered lower part. The presenter's body runs on to the bottom edge
behind the app's comments, as a phone viewer expects from a live seller. Sizes are given for
a 720-pixel-wide frame and scaled by ``width / 720``.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatarcast.errors import ConfigError
from avatarcast.programme.drawing import Box
from avatarcast.programme.layout import SafeZones

__all__ = ["AvatarFraming", "PortraitPlan", "plan_portrait"]

#: the presenter's face height (hair to chin) at most this share of the frame width
_MAX_FACE = 0.62
_CARD_H = 116  # the compact card, at 720 px wide
_MIN_FACE_PX = 160  # below this the plan refuses: the presenter would be a thumbnail


def _even(n: float) -> int:
    return 2 * round(n / 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class AvatarFraming:
    """Where a renderer puts the avatar box: its scale against the pack's own frame, its
    top-left corner, and the frame row its body reaches down to."""

    scale: float
    x: int
    y: int
    extend_to: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PortraitPlan:
    """The boxes of a portrait frame, in frame pixels."""

    width: int
    height: int
    scale: float
    margin: int
    gap: int
    label_xy: tuple[int, int]
    label_max_width: int
    seller: Box  # the seller panel's row (empty without a seller): it is drawn at most this big
    card: Box
    caption: Box
    avatar_top: int
    chin_limit: int

    def framing(self, *, chin_px: float, face_h_px: float, width_px: float) -> AvatarFraming:
        """The avatar box for a pack whose chin is ``chin_px`` below the top of its avatar box
        and whose face is ``face_h_px`` tall (pack pixels), in an avatar ``width_px`` wide."""
        room = self.chin_limit - self.avatar_top
        scale = min(room / chin_px, _MAX_FACE * self.width / face_h_px)
        x = _even((self.width - width_px * scale) / 2)
        return AvatarFraming(scale=scale, x=x, y=_even(self.avatar_top), extend_to=self.height)


def plan_portrait(
    *,
    width: int,
    height: int,
    safe: SafeZones,
    label_size: tuple[int, int],
    label_top: bool,
    label_left: bool,
    caption_h: int,
    seller_h: int,
    label_max_width: int,
) -> PortraitPlan:
    """Place label, seller, card, captions and the presenter's face clear of ``safe``.

    Raises ConfigError when the preset leaves too little room for a recognisable face.
    """
    s = width / 720
    m, gap = _even(28 * s) or 2, _even(16 * s) or 2
    top, bottom = safe.clear_top, safe.clear_bottom
    lw, lh = label_size
    label_y = top + m if label_top else bottom - m - lh
    lx0, lx1 = safe.free_span(label_y, label_y + lh)
    label_x = lx0 + m if label_left else lx1 - m - lw
    # the seller sits under the label (a 5 % label leaves no room beside it on a phone)
    if label_top:
        seller_y = label_y + lh + gap // 2
        upper, lower = seller_y + seller_h + (gap if seller_h else 0), bottom - m
    else:
        seller_y = label_y - gap // 2 - seller_h
        upper, lower = top + m, seller_y - gap
    cap_top = lower - caption_h
    cx0, cx1 = safe.free_span(cap_top, lower)
    caption = Box(cx0 + m, cap_top, cx1 - cx0 - 2 * m, caption_h)
    card_h = _even(_CARD_H * s)
    card_top = cap_top - gap - card_h
    kx0, kx1 = safe.free_span(card_top, card_top + card_h)
    card = Box(kx0 + m, card_top, kx1 - kx0 - 2 * m, card_h)
    sx0, sx1 = safe.free_span(seller_y, seller_y + seller_h)
    seller = Box(sx0 + m, seller_y, sx1 - sx0 - 2 * m, seller_h)
    avatar_top = upper
    chin_limit = card_top - gap
    if chin_limit - avatar_top < _MIN_FACE_PX * s:
        raise ConfigError(
            f"the {safe.preset} safe zones leave {chin_limit - avatar_top} px for the "
            f"presenter's face in a {width}x{height} frame; {round(_MIN_FACE_PX * s)} needed"
        )
    return PortraitPlan(
        width=width,
        height=height,
        scale=s,
        margin=m,
        gap=gap,
        label_xy=(label_x, label_y),
        label_max_width=label_max_width,
        seller=seller,
        card=card,
        caption=caption,
        avatar_top=avatar_top,
        chin_limit=chin_limit,
    )
