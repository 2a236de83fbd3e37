"""One programme, several shapes: a renderer, compositor and encoder per layout.

Talk, voice, animation and the frame plan are made once per stream; each layout only draws
the plan in its own shape and encodes it once, for every destination that asked for that
shape (``FrameLoop`` runs the extra views after the main one, in the same worker
thread and from the same ``FramePlan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from avatarcast.avatar.pack import AvatarPack
from avatarcast.avatar.render import AvatarFraming, SpriteAvatarRenderer
from avatarcast.avatar.twin.load import Twin
from avatarcast.avatar.twin.render import TwinRenderer
from avatarcast.frames import StreamFormat
from avatarcast.output.base import Sink
from avatarcast.programme.compositor import Compositor, SellerInfo, portrait_plan
from avatarcast.programme.layout import Layout, SafeZones, safe_zones
from avatarcast.programme.overlays import LabelConfig
from avatarcast.programme.portrait import FaceMetrics
from avatarcast.yuv import Sprite

__all__ = ["Presenter", "Renderer", "View", "face_metrics", "make_view", "view_format"]

Presenter = AvatarPack | Twin
"""A drawn pack or a twin: what a stream's views draw the presenter from."""
Renderer = SpriteAvatarRenderer | TwinRenderer


@dataclass(slots=True, kw_only=True)
class View:
    """A layout's drawing parts, and (live) the encoder and sinks that take its frames."""

    layout: Layout
    fmt: StreamFormat
    renderer: Renderer
    compositor: Compositor
    safe: SafeZones
    sinks: list[Sink] = field(default_factory=list)


def face_metrics(pack: Presenter) -> FaceMetrics:
    """Where ``pack``'s face is in its avatar box (for framing a portrait shot).

    The chin is taken as the mouth's bottom plus the mouth's own height below it; a twin's
    comes from its landmarks (its avatar box is the whole loop frame).
    """
    if isinstance(pack, Twin):
        t = pack.pack
        return FaceMetrics(chin=t.chin, face_h=t.face_h, head_cx=t.head_cx, head_w=t.head_w)
    rest = pack.mouths["rest"]
    mouth_h = rest.rgba().shape[0]
    head_w = pack.head.rgba().shape[1]
    chin = pack.head.y + rest.y + 2 * mouth_h
    return FaceMetrics(
        chin=float(chin),
        face_h=float(chin - pack.head.y),
        head_cx=pack.head.x + head_w / 2,
        head_w=float(head_w),
    )


def view_format(base: StreamFormat, layout: Layout) -> StreamFormat:
    return replace(base, width=layout.width, height=layout.height)


def _renderer(
    pack: Presenter, w: int, h: int, framing: AvatarFraming | None
) -> tuple[Renderer, Sprite | None]:
    if isinstance(pack, Twin):
        twin = TwinRenderer(pack.clip, pack.engine, frame_width=w, frame_height=h, framing=framing)
        return twin, None
    sprite = SpriteAvatarRenderer(pack, frame_width=w, frame_height=h, framing=framing)
    return sprite, sprite.render_background(w, h)


def make_view(
    pack: Presenter,
    layout: Layout,
    *,
    fmt: StreamFormat,
    lang: str,
    label: LabelConfig,
    seller: SellerInfo | None,
) -> View:
    """Frame the presenter, lay out the overlays and draw the backdrop for ``layout``."""
    w, h = layout.width, layout.height
    safe = safe_zones(layout.preset, w, h)
    plan = None
    framing = None
    if layout.portrait:
        plan = portrait_plan(
            width=w,
            height=h,
            lang=lang,
            label=label,
            safe=safe,
            seller=seller is not None,
            face=face_metrics(pack),
        )
        framing = plan.framing
    renderer, background = _renderer(pack, w, h, framing)
    compositor = Compositor(
        width=w,
        height=h,
        lang=lang,
        renderer=renderer,
        background=background,
        label=label,
        seller=seller,
        safe=safe,
        portrait=plan,
    )
    return View(
        layout=layout,
        fmt=view_format(fmt, layout),
        renderer=renderer,
        compositor=compositor,
        safe=safe,
    )
