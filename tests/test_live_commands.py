"""Commands on a running live programme, read back from a real nginx-rtmp.

A label and a seller change are handed to the stream while a player reads it from the server;
every decoded frame is classed by its pixels (the new label plate and seller panel there, or
not), and the first that shows them must be at most a second of media time after the request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.pack import list_packs, load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.commands import LabelChanged, SellerChanged
from avatarcast.pipeline.build import ProgrammeOptions
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.programme.compositor import Compositor, SellerInfo
from avatarcast.programme.overlays import LabelConfig
from avatarcast.yuv import YuvFrame
from rtmp_server import RtmpServer

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
LABEL = LabelChanged(text="AI presenter (test)", position="bottom-right")
SELLER = SellerChanged(name="Testwinkel BV", contact="testwinkel.example")
#: mean |Y| difference over the label and seller boxes below which a frame shows them
SHOWS = 8.0

Y = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]


def _restyled() -> tuple[Y, list[Box]]:
    """The Y plane of a frame in the new style, and the boxes of its label and seller panel."""
    w, h = 1280, 720
    renderer = SpriteAvatarRenderer(load_pack(list_packs()[0]), frame_width=w, frame_height=h)
    comp = Compositor(
        width=w,
        height=h,
        lang="nl",
        renderer=renderer,
        background=renderer.render_background(w, h),
        label=LabelConfig(text=LABEL.text, position="bottom-right"),
        seller=SellerInfo(name=str(SELLER.name), contact=SELLER.contact),
    )
    out = YuvFrame(w, h)
    comp.compose(out, state=AvatarState(), product=None, caption=None)
    boxes = [tuple(comp.label.box), tuple(comp.region_of("seller"))]
    return out.y.copy(), boxes  # type: ignore[return-value]


def _error(y: Y, ref: Y, boxes: list[Box]) -> float:
    return max(
        float(
            np.abs(y[b : b + bh, a : a + bw].astype(np.int16) - ref[b : b + bh, a : a + bw]).mean()
        )
        for a, b, bw, bh in boxes
    )


def _read(url: str, stop: threading.Event, frames: list[tuple[float, Y]]) -> None:
    """A player on the server: (media time, Y plane) of every frame until ``stop``."""
    with av.open(url, options={"rw_timeout": "8000000"}, timeout=10.0) as container:
        for frame in container.decode(video=0):
            planar = frame.to_ndarray(format="yuv420p")
            frames.append((float(frame.time or 0.0), planar[: frame.height].copy()))
            if stop.is_set():
                return


async def test_label_and_seller_change_show_within_a_second(
    rtmp_server: RtmpServer, tmp_path: Path
) -> None:
    ref, boxes = _restyled()
    url = rtmp_server.url("restyle")
    opts = LiveOptions(
        programme=ProgrammeOptions(catalog_path=DEMO, lang="nl", disclosure_interval_s=None),
        destinations=(url,),
        duration=30,
    )
    control = LiveControl()
    task = asyncio.create_task(run_live(opts, control=control))
    stop, frames = threading.Event(), list[tuple[float, Y]]()
    try:
        while not any(d.state == "connected" for d in control.status().destinations):
            assert not task.done(), task
            await asyncio.sleep(0.1)
        reader = asyncio.create_task(asyncio.to_thread(_read, url, stop, frames))
        while len(frames) < 25:  # the player is watching
            assert not reader.done(), reader
            await asyncio.sleep(0.05)
        wall = time.monotonic()
        control.submit(LABEL)
        await control.request(SELLER)  # both applied at the next frame boundary
        applied_in_wall = time.monotonic() - wall
        await asyncio.sleep(2.0)
        stop.set()
        await reader
    finally:
        control.stop()
        await task
    label, seller, *_ = control.director.log  # then the stop
    assert (label.command, seller.command) == (LABEL, SELLER)
    assert label.error is None and seller.error is None
    assert applied_in_wall < 1.0  # the next frame boundary, not the next start
    asked = label.requested_t
    errors = [(t, _error(y, ref, boxes)) for t, y in frames]
    before = [e for t, e in errors if t < asked - 0.001]
    after = [(t, e) for t, e in errors if t >= label.t]
    assert before and after, errors
    assert min(before) > 2 * SHOWS, before  # the old style cannot pass for the new
    first = next(t for t, e in after if e < SHOWS)
    assert first - asked <= 1.0, (first, asked)
    assert all(e < SHOWS for t, e in after if t > first), after
