"""The seller panel is on screen for the whole stream and never under the card or the label."""

from __future__ import annotations

import numpy as np

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.pack import load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.catalog.loaders import load_catalog
from avatarcast.programme.compositor import Compositor, SellerInfo
from avatarcast.yuv import YuvFrame
from test_render import DEMO


def _compositor(seller: SellerInfo | None) -> Compositor:
    renderer = SpriteAvatarRenderer(load_pack("mila"))
    return Compositor(renderer=renderer, lang="nl", seller=seller)


def test_seller_panel_is_drawn_below_the_card() -> None:
    product = load_catalog(DEMO)[0]
    with_seller = _compositor(SellerInfo(name="Kovana Store BV", contact="service@kovana.example"))
    without = _compositor(None)
    box = with_seller.region_of("seller")
    card = with_seller.region_of("card")
    assert card.bottom <= box.y and not box.intersects(with_seller.region_of("label"))
    frames = []
    for comp in (with_seller, without):
        out = YuvFrame(1280, 720)
        comp.compose(out, state=AvatarState(), product=product, caption=None)
        frames.append(out.y[box.y : box.y + box.h, box.x : box.x + box.w].astype(int))
    # the panel's white text makes its region clearly brighter than the backdrop alone
    assert (frames[0] > 200).sum() > 200 and (frames[1] > 200).sum() == 0
    assert np.abs(frames[0] - frames[1]).mean() > 10
    assert SellerInfo(name="A", contact="b").line("nl") == "Verkoper: A · b"
