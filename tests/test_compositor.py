"""The programme picture: label always on top and legible, card shows the price, captions fit.

Frames are checked after conversion to RGB with PyAV and after a real libx264 round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from avatarcast.avatar.base import AvatarState
from avatarcast.catalog.model import Product
from avatarcast.errors import ConfigError
from avatarcast.programme import fonts
from avatarcast.programme.compositor import Compositor
from avatarcast.programme.overlays import (
    CORNERS,
    LabelConfig,
    caption_max_height,
    label_text,
)
from avatarcast.yuv import YuvFrame

U8 = npt.NDArray[np.uint8]
SIZES = [(1280, 720), (1920, 1080)]
LONG = (
    "This airfryer holds five and a half litres, enough for a family of four, it heats up in "
    "under three minutes, the basket is dishwasher safe, and the digital display has eight "
    "programmes for fries, chicken, fish, vegetables, cakes and more, so dinner is quick."
)


class BoxRenderer:
    """Draws a solid rectangle in the avatar's place; ``cover_all`` paints the whole frame."""

    name = "box"

    def __init__(self, *, cover_all: bool = False) -> None:
        self.cover_all = cover_all

    def draw(self, frame: YuvFrame, state: AvatarState) -> None:
        w, h = frame.width, frame.height
        if self.cover_all:
            x0, y0, x1, y1 = 0, 0, w, h
        else:
            dx = int(state.head_dx * w / 1280) & ~1
            x0, y0, x1, y1 = w // 5 + dx, h * 3 // 10, w // 2 + dx, h
        frame.y[y0:y1, x0:x1] = 120
        frame.u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 150
        frame.v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 110

    def mouth_box(self) -> tuple[int, int, int, int]:
        return (0, 0, 2, 2)


def product(price: str = "89.99", **extra: object) -> Product:
    return Product.model_validate(
        {
            "id": "airfryer-x1",
            "title": {"en": "Airfryer X1 XXL 5.5 litre", "nl": "Airfryer X1 XXL 5,5 liter"},
            "brand": "Philips",
            "price": price,
            "stock": 12,
            **extra,
        }
    )


def to_rgb(frame: YuvFrame) -> U8:
    planar = frame.buf.reshape(frame.height * 3 // 2, frame.width)
    rgb: U8 = av.VideoFrame.from_ndarray(planar, format="yuv420p").to_ndarray(format="rgb24")
    return rgb


def x264_round_trip(frames: list[YuvFrame]) -> list[U8]:
    """Encode with libx264 at crf 23, decode, and return the decoded frames as RGB."""
    w, h = frames[0].width, frames[0].height
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = av.time_base  # any fixed base works for an in-memory round trip
    enc.framerate = 25
    enc.options = {"crf": "23", "preset": "veryfast", "tune": "zerolatency"}
    dec = av.CodecContext.create("h264", "r")
    decoded: list[U8] = []

    def take(packets: list[av.Packet]) -> None:
        for packet in packets:
            for out in dec.decode(packet):
                decoded.append(out.to_ndarray(format="rgb24"))

    for i, frame in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(frame.buf.reshape(h * 3 // 2, w), format="yuv420p")
        vf.pts = i
        take(enc.encode(vf))
    take(enc.encode(None))
    for out in dec.decode(None):
        decoded.append(out.to_ndarray(format="rgb24"))
    assert len(decoded) == len(frames)
    return decoded


def check_label(rgb: U8, comp: Compositor, *, tolerance: int) -> int:
    """Assert the plate is there in its colour; return the measured ink height of its text."""
    lab = comp.label
    box, text = lab.box, lab.text_box
    plate = np.array(lab.plate_rgb, np.int16)
    strip = rgb[box.y + 3 : text.y - 3, box.x + 8 : box.right - 8].astype(np.int16)
    assert strip.size, "no plate padding to sample"
    diff = np.abs(strip - plate)
    assert np.percentile(diff, 99) <= tolerance, f"plate colour off: {diff.mean():.1f}"
    inset = 4
    inside = rgb[box.y + inset : box.bottom - inset, box.x + inset : box.right - inset]
    luma = inside.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    plate_luma = float(plate @ np.array([0.299, 0.587, 0.114]))
    ink_rows = np.flatnonzero((luma > plate_luma + 100).any(axis=1))
    assert ink_rows.size, "no text ink inside the plate"
    return int(ink_rows[-1] - ink_rows[0] + 1)


def region(rgb: U8, x: int, y: int, w: int, h: int) -> npt.NDArray[np.int16]:
    return rgb[y : y + h, x : x + w].astype(np.int16)


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def comp(request: pytest.FixtureRequest) -> Iterator[Compositor]:
    w, h = request.param
    yield Compositor(width=w, height=h, lang="nl", renderer=BoxRenderer())


# --- the AI label -------------------------------------------------------------------------------


def test_label_present_and_tall_enough_in_every_frame_after_x264(comp: Compositor) -> None:
    short = min(comp.width, comp.height)
    frames = []
    for i in range(12):
        out = YuvFrame(comp.width, comp.height)
        caption = "Nu in de aanbieding." if i % 2 else None
        comp.compose(out, state=AvatarState(head_dx=4.0 * i), product=product(), caption=caption)
        frames.append(out)
        ink = check_label(to_rgb(out), comp, tolerance=3)
        assert ink >= 0.05 * short, f"label text {ink}px < 5% of {short}px"
    for rgb in x264_round_trip(frames):
        ink = check_label(rgb, comp, tolerance=14)
        assert ink >= 0.05 * short, f"after x264: label text {ink}px < 5% of {short}px"


def test_label_is_drawn_over_an_avatar_that_covers_the_frame() -> None:
    comp = Compositor(width=1280, height=720, lang="en", renderer=BoxRenderer(cover_all=True))
    out = YuvFrame(1280, 720)
    comp.compose(out, state=AvatarState(), product=None, caption=None)
    assert check_label(to_rgb(out), comp, tolerance=3) >= 36


@pytest.mark.parametrize("corner", CORNERS)
def test_label_corner_keeps_clear_of_card_and_captions(corner: str) -> None:
    for lang in ("en", "nl", "zh"):
        comp = Compositor(
            width=1280,
            height=720,
            lang=lang,
            renderer=BoxRenderer(),
            label=LabelConfig(position=corner),  # type: ignore[arg-type]
        )
        lab = comp.region_of("label")
        assert 0 <= lab.x and lab.right <= 1280 and 0 <= lab.y and lab.bottom <= 720
        assert not lab.intersects(comp.region_of("card"))
        assert not lab.intersects(comp.region_of("caption"))
        card = comp.card_for(product(sale_price="79.99", prior_lowest_price="84.99"))
        assert not card.box.intersects(lab)
        assert card.box.right <= 1280 and card.box.bottom <= 720
        out = YuvFrame(1280, 720)
        comp.compose(out, state=AvatarState(), product=product(), caption=LONG)
        assert check_label(to_rgb(out), comp, tolerance=3) >= 36


def test_label_texts_and_config() -> None:
    assert label_text("en") == "AI-generated presenter"
    assert label_text("nl") == "AI-gegenereerde presentator"
    assert label_text("nl-NL") == "AI-gegenereerde presentator"
    assert label_text("zh") == "AI生成主播"
    assert label_text("xx") == label_text("en")
    with pytest.raises(ConfigError):
        LabelConfig(position="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        LabelConfig(text="  ")
    comp = Compositor(renderer=BoxRenderer(), lang="nl", label=LabelConfig(lang="zh"))
    assert comp.label.text == "AI生成主播"


def test_fonts_cover_euro_and_chinese() -> None:
    if fonts.latin_font_path() is not None:
        assert fonts.font_for("€ 89,99", 20).getname()[0] == "DejaVu Sans"
    if fonts.cjk_font_path() is not None:
        assert fonts.font_for("AI生成主播", 20).getname()[0] == "Noto Sans CJK SC"
    assert fonts.has_cjk("AI生成主播") and not fonts.has_cjk("€ 89,99")
    assert fonts.font_for("x", 20) is fonts.font_for("y", 20)


# --- the product card ---------------------------------------------------------------------------


def test_card_in_frame_is_the_card_for_that_price(comp: Compositor) -> None:
    p89, p79 = product("89.99"), product("79.99")
    fresh89, fresh79 = comp.render_card(p89), comp.render_card(p79)
    assert fresh89.box == fresh79.box
    assert not np.array_equal(fresh89.sprite.y, fresh79.sprite.y)
    x, y, w, h = fresh89.box

    out = YuvFrame(comp.width, comp.height)
    comp.compose(out, state=AvatarState(), product=p89, caption="Kijk eens.")
    assert np.array_equal(out.y[y : y + h, x : x + w], fresh89.sprite.y)
    assert np.array_equal(out.u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2], fresh89.sprite.u)

    def rgb_of(card: YuvFrame) -> U8:
        return to_rgb(card)

    ref89, ref79 = (rgb_of(_sprite_frame(c.sprite)) for c in (fresh89, fresh79))
    decoded = x264_round_trip([out, out, out])[-1]
    seen = region(decoded, x, y, w, h)
    err89 = np.abs(seen - ref89).mean()
    err79 = np.abs(seen - ref79).mean()
    print(
        f"\ncard {comp.width}x{comp.height} after x264: err vs 89.99 {err89:.2f}, 79.99 {err79:.2f}"
    )
    assert err89 < 2.0
    diff_rows = np.flatnonzero(np.abs(ref89 - ref79.astype(np.int16)).max(axis=(1, 2)) > 60)
    price = slice(diff_rows[0], diff_rows[-1] + 1)
    assert np.abs(seen[price] - ref89[price]).mean() * 3 < np.abs(seen[price] - ref79[price]).mean()


def _sprite_frame(sprite: object) -> YuvFrame:
    from avatarcast.yuv import Sprite

    assert isinstance(sprite, Sprite)
    frame = YuvFrame(sprite.width, sprite.height)
    frame.y[...], frame.u[...], frame.v[...] = sprite.y, sprite.u, sprite.v
    return frame


def test_price_change_shows_on_the_next_frame() -> None:
    comp = Compositor(width=1280, height=720, lang="nl", renderer=BoxRenderer())
    before = product("89.99")
    after = before.model_copy(update={"price": Decimal("79.99")})
    out = YuvFrame(1280, 720)
    comp.compose(out, state=AvatarState(), product=before, caption=None)
    card_before = comp.card_for(before)
    assert comp.card_for(product("89.99")) is card_before  # same content: no re-render
    x, y, w, h = card_before.box
    first = out.y[y : y + h, x : x + w].copy()
    comp.compose(out, state=AvatarState(), product=after, caption=None)
    now = out.y[y : y + h, x : x + w]
    assert not np.array_equal(first, now)
    assert np.array_equal(now, comp.render_card(after).sprite.y)


def test_sale_card_with_lowest_price_and_image(tmp_path: object) -> None:
    comp = Compositor(width=1280, height=720, lang="nl", renderer=BoxRenderer())
    plain = comp.card_for(product("89.99"))
    sale = comp.card_for(product("89.99", sale_price="79.99"))
    lowest = comp.card_for(product("89.99", sale_price="79.99", prior_lowest_price="84.99"))
    assert plain.box.h < sale.box.h < lowest.box.h
    image = f"{tmp_path}/airfryer.png"
    Image.new("RGB", (200, 160), (200, 30, 30)).save(image)
    pictured = comp.card_for(product("89.99", image=image))
    assert pictured.box.h > plain.box.h
    reds = pictured.sprite.v > 200
    assert reds.sum() > 1000, "product image not drawn"
    slot = comp.region_of("card")
    for card in (plain, sale, lowest, pictured):
        assert slot.y - 40 <= card.box.y and card.box.bottom <= slot.bottom + 40
    missing = comp.card_for(product("89.99", image="/nonexistent/x.png"))
    assert missing.box.h == plain.box.h


# --- captions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Kort.", LONG, LONG * 3, "这款空气炸锅容量为五点五升，" * 12])
def test_captions_wrap_inside_their_region(comp: Compositor, text: str) -> None:
    area = comp.region_of("caption")
    cap = comp.caption_for(text)
    assert area.x <= cap.x and cap.box.right <= area.right
    assert area.y <= cap.y and cap.box.bottom <= area.bottom <= comp.height
    assert cap.box.h <= caption_max_height(comp.scale)
    out = YuvFrame(comp.width, comp.height)
    comp.compose(out, state=AvatarState(), product=product(), caption=text)
    comp.compose(out, state=AvatarState(), product=product(), caption=text)
    assert len(comp._captions) >= 1 and comp._caption(text) is comp._caption(text)


# --- picture and timing -------------------------------------------------------------------------


class NoopRenderer:
    name = "noop"

    def draw(self, frame: YuvFrame, state: AvatarState) -> None:
        return None

    def mouth_box(self) -> tuple[int, int, int, int]:
        return (0, 0, 2, 2)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_compose_time(width: int, height: int) -> None:
    comp = Compositor(width=width, height=height, lang="nl", renderer=NoopRenderer())
    out = YuvFrame(width, height)
    p = product("89.99", sale_price="79.99", prior_lowest_price="84.99")
    comp.compose(out, state=AvatarState(), product=p, caption=LONG)
    n = 300
    t0 = time.perf_counter()
    for _ in range(n):
        comp.compose(out, state=AvatarState(), product=p, caption=LONG)
    ms = (time.perf_counter() - t0) / n * 1000
    print(f"\ncompose {width}x{height} (no avatar draw): {ms:.3f} ms/frame")


def test_save_720p_picture() -> None:
    comp = Compositor(width=1280, height=720, lang="nl", renderer=BoxRenderer())
    out = YuvFrame(1280, 720)
    p = product("89.99", sale_price="79.99", prior_lowest_price="84.99")
    comp.compose(out, state=AvatarState(), product=p, caption=LONG)
    Image.fromarray(to_rgb(out)).save("/tmp/avatarcast_compositor_720p.png")


def test_compositor_composes_a_frame_plan() -> None:
    from avatarcast.programme.programme import FramePlan

    comp = Compositor(width=1280, height=720, lang="en", renderer=BoxRenderer())
    plan = FramePlan(
        pts=0,
        state=AvatarState(),
        product=product(),
        caption="Hello.",
        pcm=np.zeros(1920, np.int16),
        sentence=None,
    )
    out = YuvFrame(1280, 720)
    comp(plan, out)
    x, y, w, h = comp.card_for(plan.product).box  # type: ignore[arg-type]
    assert np.array_equal(out.y[y : y + h, x : x + w], comp.card_for(product()).sprite.y)


# --- restyling on air ---------------------------------------------------------------------------


def test_a_restyle_draws_what_a_compositor_built_that_way_draws() -> None:
    """A label or seller change on air (``restyle``) gives the same pixels, card and caption
    included, as a compositor made with the new style from the start; removing the seller
    brings back the frame without a panel."""
    from avatarcast.programme.compositor import SellerInfo
    from avatarcast.programme.overlays import LabelConfig

    label = LabelConfig(text="AI presenter", position="bottom-right")
    seller = SellerInfo(name="Kovana Store BV", contact="kovana.example")
    product = Product(id="AF-1", title="Air fryer", brand="Acme", price=Decimal("89.99"))

    def frame(c: Compositor) -> npt.NDArray[np.uint8]:
        out = YuvFrame(1280, 720)
        c.compose(out, state=AvatarState(), product=product, caption="Nu in de aanbieding.")
        return out.buf.copy()

    live = Compositor(lang="nl", renderer=BoxRenderer())
    plain = frame(live)
    live.restyle(label=label, seller=seller)
    made = Compositor(lang="nl", renderer=BoxRenderer(), label=label, seller=seller)
    assert np.array_equal(frame(live), frame(made))
    assert not np.array_equal(frame(live), plain)
    live.restyle(label=LabelConfig(), seller=None)
    assert np.array_equal(frame(live), plain)
