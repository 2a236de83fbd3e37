"""The portrait (9:16) layout, planned for a phone before anything is drawn.

On a phone the app's own interface covers the top band, the lower third (comments, the
product bag) and a rail on the right (``programme.layout.SafeZones``). So, from the top of
the clear band down: the AI label at its corner with the seller under it; the presenter's
face, as large as fits; the captions just above the covered lower part. The product card is
either a compact row over the chest under a centred presenter (roomy presets), or a column at
the left with the presenter right of it (tight presets, where a row would leave a small face):
the plan takes whichever gives the larger face. The presenter's body runs on to the bottom
edge behind the app's comments, as a phone viewer expects from a live seller. Sizes are given
for a 720-pixel-wide frame and scaled by ``width / 720``.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatarcast.avatar.render import AvatarFraming
from avatarcast.errors import ConfigError
from avatarcast.programme.drawing import Box
from avatarcast.programme.layout import SafeZones

__all__ = ["AvatarFraming", "FaceMetrics", "PortraitPlan", "plan_portrait"]

#: the presenter's face height (hair to chin) at most this share of the frame width
_MAX_FACE = 0.62
_CARD_H = 116  # the compact card, at 720 px wide
_MIN_FACE_PX = 160  # below this the plan refuses: the presenter would be a thumbnail


def _even(n: float) -> int:
    return 2 * round(n / 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceMetrics:
    """A pack's presenter in its own pixels, from the top-left of its avatar box."""

    chin: float  # how far below the box's top the chin is
    face_h: float  # hair to chin
    head_cx: float  # the head's centre, across
    head_w: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PortraitPlan:
    """The boxes of a portrait frame, in frame pixels, and where the presenter stands.

    ``card_beside`` says which of two arrangements won: the card as a row under the face
    (a centred presenter; roomy presets), or as a column left of a presenter standing right
    of centre (tight presets, whose clear band leaves a face too small above a card row).
    """

    width: int
    height: int
    scale: float
    margin: int
    gap: int
    label_xy: tuple[int, int]
    label_max_width: int
    seller: Box  # the seller panel's row (empty without a seller): it is drawn at most this big
    card: Box
    card_beside: bool
    caption: Box
    framing: AvatarFraming


def _face_scale(room_h: float, room_w: float, face: FaceMetrics, width: int) -> float:
    """The largest scale whose chin fits ``room_h`` below the top and head ``room_w`` across,
    and whose face stays under ``_MAX_FACE`` of the frame width."""
    return min(room_h / face.chin, room_w / face.head_w, _MAX_FACE * width / face.face_h)


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
    face: FaceMetrics,
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
    sx0, sx1 = safe.free_span(seller_y, seller_y + seller_h)
    seller = Box(sx0 + m, seller_y, sx1 - sx0 - 2 * m, seller_h)
    cap_top = lower - caption_h
    cx0, cx1 = safe.free_span(cap_top, lower)
    caption = Box(cx0 + m, cap_top, cx1 - cx0 - 2 * m, caption_h)
    # a card row under the face, the presenter centred
    card_h = _even(_CARD_H * s)
    row_top = cap_top - gap - card_h
    kx0, kx1 = safe.free_span(row_top, row_top + card_h)
    row = Box(kx0 + m, row_top, kx1 - kx0 - 2 * m, card_h)
    row_scale = _face_scale(row_top - gap - upper, width - 2 * m, face, width)
    # or a card column at the left, the presenter right of it, the chin down to the captions
    col_w = _even(width * 0.42)
    bx0, bx1 = safe.free_span(upper, cap_top - gap)
    col = Box(bx0 + m, upper, col_w, cap_top - gap - upper)
    side_w = bx1 - m - (col.right + gap)
    side_scale = _face_scale(cap_top - gap - upper, side_w, face, width)
    beside = side_scale > row_scale * 1.15  # the row keeps a centred presenter unless clearly worse
    scale = side_scale if beside else row_scale
    if face.chin * scale < _MIN_FACE_PX * s or scale <= 0:
        raise ConfigError(
            f"the {safe.preset} safe zones leave no room for a recognisable face in a "
            f"{width}x{height} frame (the presenter would be {round(face.face_h * scale)} px tall)"
        )
    centre = (col.right + gap + bx1 - m) / 2 if beside else width / 2
    framing = AvatarFraming(
        scale=scale,
        x=_even(centre - face.head_cx * scale),
        y=_even(upper),
        extend_to=height,
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
        card=col if beside else row,
        card_beside=beside,
        caption=caption,
        framing=framing,
    )
