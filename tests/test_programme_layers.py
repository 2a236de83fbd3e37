"""Cached compose: every frame is byte-identical to drawing every layer, in a ring of buffers.

A real avatar pack, real cards and captions; the reference is the same compositor with the
cache off, drawing every layer into a fresh buffer each frame.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pytest

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.pack import EYE_STATES, list_packs, load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.catalog.model import Product
from avatarcast.frames import StreamFormat
from avatarcast.programme.compositor import Compositor
from avatarcast.programme.layers import clip_box, intersect
from avatarcast.programme.overlays import LabelConfig
from avatarcast.yuv import YuvFrame

W, H = 1280, 720


def _product(pid: str, price: str) -> Product:
    return Product.model_validate(
        {"id": pid, "title": {"en": f"Product {pid}"}, "brand": "Kovana", "price": price}
    )


def _pair(pack: str, **kw: object) -> tuple[Compositor, Compositor, SpriteAvatarRenderer]:
    renderer = SpriteAvatarRenderer(load_pack(pack), frame_width=W, frame_height=H)
    background = renderer.render_background(W, H)
    make = lambda cache: Compositor(  # noqa: E731
        width=W, height=H, renderer=renderer, background=background, cache=cache, **kw
    )
    return make(True), make(False), renderer


def _states(renderer: SpriteAvatarRenderer) -> list[AvatarState]:
    """Every mouth and eye state, head sways to the clamp and past it, breathing both ways."""
    blinks = {"open": 0.0, "half": 0.5, "closed": 1.0}
    assert set(blinks) == set(EYE_STATES)
    lim = renderer.pack.idle.max_head_offset_px
    states = []
    moves = itertools.cycle([(0, 0, 0), (lim, -lim, 1), (-lim * 3, lim * 2, -1), (2, 4, 0.5)])
    for viseme, blink in itertools.product(renderer.pack.mouths, blinks.values()):
        dx, dy, breath = next(moves)
        opening = renderer.pack.mouths[viseme].openness
        states.append(
            AvatarState(
                viseme=viseme,
                mouth_open=opening,
                blink=blink,
                head_dx=dx,
                head_dy=dy,
                breath=breath,
            )
        )
    return states


@pytest.mark.parametrize("pack", list_packs())
@pytest.mark.parametrize("corner", ["top-left", "bottom-left", "top-right"])
def test_cached_compose_is_byte_identical_to_a_full_compose(pack: str, corner: str) -> None:
    cached, full, renderer = _pair(pack, label=LabelConfig(position=corner))  # type: ignore[arg-type]
    a, b = _product("a", "89.99"), _product("b", "19.50")
    cheaper = a.model_copy(update={"price": Decimal("79.99")})
    products = [a, a, a, b, b, None, cheaper, a]
    captions = [None, "Five and a half litres.", "Five and a half litres.", None, "Kovana."]
    states = _states(renderer)
    ring = [YuvFrame(W, H) for _ in range(3)]
    n = max(len(states), 90)
    for i in range(n):
        state = states[i % len(states)]
        product = products[(i // 7) % len(products)]
        caption = captions[(i // 3) % len(captions)]
        out = ring[i % 3]
        if i % 41 == 40:
            cached.compose_slate(out, "Back soon")
            continue
        cached.compose(out, state=state, product=product, caption=caption)
        ref = YuvFrame(W, H)
        full.compose(ref, state=state, product=product, caption=caption)
        assert np.array_equal(out.buf, ref.buf), f"frame {i} differs from a full compose"
    layers = cached._layers
    assert layers is not None and layers.hits > 0  # the cache was really used


def test_the_same_pose_reuses_its_tile_and_a_new_card_rebuilds_them() -> None:
    cached, _, _ = _pair(list_packs()[0])
    layers = cached._layers
    assert layers is not None
    out = YuvFrame(W, H)
    p = _product("a", "89.99")
    for _ in range(5):
        cached.compose(out, state=AvatarState(viseme="AA", mouth_open=0.8), product=p, caption=None)
    assert (layers.misses, layers.hits) == (1, 4)
    cached.compose(out, state=AvatarState(), product=_product("a", "9.99"), caption=None)
    assert layers.misses == 2  # a new card, a new static frame: tiles drawn again


def test_a_buffer_drawn_elsewhere_is_redrawn_in_full_after_forget() -> None:
    cached, full, _ = _pair(list_packs()[0])
    out, ref = YuvFrame(W, H), YuvFrame(W, H)
    state, p = AvatarState(head_dx=3), _product("a", "89.99")
    cached.compose(out, state=state, product=p, caption="Hello.")
    out.buf[:] = 7  # someone else drew into it
    layers = cached._layers
    assert layers is not None
    layers.forget(out)
    cached.compose(out, state=state, product=p, caption="Hello.")
    full.compose(ref, state=state, product=p, caption="Hello.")
    assert np.array_equal(out.buf, ref.buf)


def test_boxes_are_clipped_to_even_edges() -> None:
    assert clip_box((-3, 5, 10, 10), W, H) == (0, 4, 8, 12)
    assert clip_box((W - 4, H - 4, 10, 10), W, H) == (W - 4, H - 4, 4, 4)
    assert clip_box((W + 2, 0, 10, 10), W, H) is None
    assert intersect((0, 0, 10, 10), (4, 4, 10, 10)) == (4, 4, 6, 6)
    assert intersect((0, 0, 4, 4), (4, 4, 2, 2)) is None


@pytest.mark.parametrize(("size", "w", "h"), [("720p", 1280, 720), ("720x1280", 720, 1280)])
def test_held_poses_keep_their_tile_and_stay_byte_identical(size: str, w: int, h: int) -> None:
    """Poses held for several frames (the usual case: only the mouth moves) over a ring of
    three buffers: a buffer that holds the pose's tile keeps it and only what was drawn over
    it is put back, and every frame still equals a full compose, landscape and portrait."""
    from avatarcast.pipeline.layouts import make_view
    from avatarcast.programme.layout import Layout

    pack = load_pack(list_packs()[0])
    layout = Layout(size, "tiktok")
    view = make_view(
        pack,
        layout,
        fmt=StreamFormat(width=w, height=h, fps=25),
        lang="en",
        label=LabelConfig(),
        seller=None,
    )
    cached = view.compositor
    full = Compositor(
        width=w,
        height=h,
        renderer=view.renderer,
        background=view.renderer.render_background(w, h),
        safe=view.safe,
        portrait=cached._portrait,
        cache=False,
    )
    states = _states(cached._renderer)  # type: ignore[arg-type]
    mouths = [s.viseme for s in states]
    p = _product("a", "89.99")
    captions = [None, "Five and a half litres.", None, "Kovana."]
    ring = [YuvFrame(w, h) for _ in range(3)]
    for i in range(120):
        held = states[(i // 8) % len(states)]  # a pose held for 8 frames, the mouth moving
        state = AvatarState(
            viseme=mouths[i % len(mouths)],
            mouth_open=0.5,
            blink=held.blink,
            head_dx=held.head_dx,
            head_dy=held.head_dy,
            breath=held.breath,
        )
        caption = captions[(i // 5) % len(captions)]
        out = ring[i % 3]
        cached.compose(out, state=state, product=p, caption=caption)
        ref = YuvFrame(w, h)
        full.compose(ref, state=state, product=p, caption=caption)
        assert np.array_equal(out.buf, ref.buf), f"frame {i} differs from a full compose"
    layers = cached._layers
    assert layers is not None and layers.kept > 60  # most frames kept the tile in place
