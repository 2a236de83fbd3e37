"""Acceptance of the visible and the implicit AI label on what actually leaves the server.

The real live programme is pushed to a real nginx-rtmp and recorded. Frames are read back
from the server with PyAV and from every recording segment, and on each decoded frame the
label plate is measured on the Y plane: the plate is there, in its luma, over its whole box,
and its text inks at least 5% of the frame's shorter side (GB 45438-2025 asks for a label
that can be seen; ``LABEL_MIN_TEXT_FRACTION`` is our floor). ``ffprobe`` then reads the
Annex E fields of the implicit label from every segment.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.pack import list_packs, load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.pipeline.build import SIZES
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.programme.compositor import Compositor, LabelOverlay
from avatarcast.programme.overlays import LABEL_MIN_TEXT_FRACTION, studio_background
from avatarcast.yuv import Sprite, YuvFrame
from rtmp_server import RtmpServer

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
ANNEX_E = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
DURATION_S = 8.0
#: Y levels an x264 round trip may move the flat plate by (its 99th percentile)
PLATE_TOLERANCE = 14
#: a row has text ink where some pixel is this much brighter than the plate
INK_STEP = 100

Y = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class LabelRef:
    """Where the label is and the plate's luma, from a compositor built like the stream's."""

    overlay: LabelOverlay
    plate_y: float
    short: int


def reference(lang: str, size: str) -> LabelRef:
    w, h = SIZES[size]
    renderer = SpriteAvatarRenderer(load_pack(list_packs()[0]), frame_width=w, frame_height=h)
    background = renderer.render_background(w, h)
    comp = Compositor(width=w, height=h, lang=lang, renderer=renderer, background=background)
    out = YuvFrame(w, h)
    comp.compose(out, state=AvatarState(), product=None, caption=None)
    box, text = comp.label.box, comp.label.text_box
    pad = out.y[box.y + 3 : text.y - 3, box.x + 8 : box.right - 8]
    assert pad.size, "no plate padding above the text to sample"
    ref = LabelRef(comp.label, float(np.median(pad)), min(w, h))
    # the check can tell a plate from no plate: the backdrop there is far from the plate's luma
    backdrop = YuvFrame(w, h)
    backdrop.blit(Sprite.from_rgba(studio_background(w, h)), 0, 0)
    backdrop.blit(background, (w - background.width) // 2, (h - background.height) // 2)
    under = np.abs(backdrop.y[plate_mask(ref, (h, w))].astype(np.int16) - ref.plate_y)
    assert np.percentile(under, 50) > 2 * PLATE_TOLERANCE, "the plate looks like the backdrop"
    return ref


def plate_mask(ref: LabelRef, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """The plate's pixels that carry no text: its box minus the rounded corners and the text
    box grown by a few pixels (x264 rings around sharp text)."""
    box, text = ref.overlay.box, ref.overlay.text_box
    mask = np.zeros(shape, bool)
    mask[box.y : box.bottom, box.x : box.right] = True
    r = max(4, round(box.h * 0.14)) + 1
    for y0, x0 in ((box.y, box.x), (box.y, box.right - r), (box.bottom - r, box.x)):
        mask[y0 : y0 + r, x0 : x0 + r] = False
    mask[box.bottom - r : box.bottom, box.right - r : box.right] = False
    g = 4
    mask[text.y - g : text.bottom + g, text.x - g : text.right + g] = False
    return mask


def check_frame(y: Y, ref: LabelRef, where: str) -> int:
    """Assert the plate is there over its box; return the text's ink height in rows."""
    mask = plate_mask(ref, y.shape)
    diff = np.abs(y[mask].astype(np.int16) - ref.plate_y)
    assert np.percentile(diff, 99) <= PLATE_TOLERANCE, (
        f"{where}: plate luma off by {np.percentile(diff, 99):.0f} (mean {diff.mean():.1f})"
    )
    box = ref.overlay.box
    inset = 4
    inside = y[box.y + inset : box.bottom - inset, box.x + inset : box.right - inset]
    rows = np.flatnonzero((inside.astype(np.int16) > ref.plate_y + INK_STEP).any(axis=1))
    assert rows.size, f"{where}: no text ink inside the plate"
    ink = int(rows[-1] - rows[0] + 1)
    floor = LABEL_MIN_TEXT_FRACTION * ref.short
    assert ink >= floor, f"{where}: label text {ink} px < {floor:.0f} px (5% of {ref.short})"
    return ink


def luma(frame: av.VideoFrame) -> Y:
    planar: Y = frame.to_ndarray(format="yuv420p")
    return planar[: frame.height]


def read_rtmp(url: str, seconds: float) -> list[Y]:
    """Frames a player gets from the server for ``seconds`` (a blocking read: run in a thread)."""
    frames: list[Y] = []
    with av.open(url, options={"rw_timeout": "8000000"}, timeout=10.0) as container:
        deadline = time.monotonic() + seconds
        for frame in container.decode(video=0):
            frames.append(luma(frame))
            if time.monotonic() > deadline:
                break
    return frames


def read_recording(folder: Path) -> dict[Path, list[Y]]:
    segments = sorted(folder.glob("segment-*.mp4"))
    assert segments, f"no recording segments in {folder}"
    out = {}
    for seg in segments:
        with av.open(str(seg)) as container:
            out[seg] = [luma(f) for f in container.decode(video=0)]
    return out


def format_tags(path: Path) -> dict[str, str]:
    exe = shutil.which("ffprobe")
    assert exe, "ffprobe is required: apt-get install ffmpeg"
    done = subprocess.run(
        [exe, "-v", "error", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    tags: dict[str, str] = json.loads(done.stdout)["format"].get("tags", {})
    return tags


@pytest.mark.parametrize(
    ("lang", "size"), [("nl", "720p"), ("zh", "720p"), ("zh", "1080p")], ids=lambda v: v
)
async def test_label_on_every_frame_from_the_server_and_the_recording(
    rtmp_server: RtmpServer, tmp_path: Path, lang: str, size: str
) -> None:
    ref = reference(lang, size)
    url = rtmp_server.url(f"label-{lang}-{size}")
    stream_id = f"label-test-{lang}"
    programme = ProgrammeOptions(
        catalog_path=DEMO, lang=lang, size=size, stream_id=stream_id, producer="acme-shop"
    )
    opts = LiveOptions(
        programme=programme,
        destinations=(url,),
        record_dir=tmp_path / "rec",
        segment_seconds=4.0,
        duration=DURATION_S,
    )
    control = LiveControl()
    task = asyncio.create_task(run_live(opts, control=control))
    while not any(d.state == "connected" for d in control.status().destinations):
        assert not task.done(), task
        await asyncio.sleep(0.1)
    live = await asyncio.to_thread(read_rtmp, url, 4.0)
    final = await task
    assert final.state == "stopped"

    w, h = SIZES[size]
    assert len(live) >= 50, f"only {len(live)} frames read back from the server"
    inks = [check_frame(y, ref, f"rtmp frame {i}") for i, y in enumerate(live)]
    assert {y.shape for y in live} == {(h, w)}

    recorded = read_recording(tmp_path / "rec")
    assert len(recorded) >= 2, "segment_seconds=4 over 8 s should close more than one segment"
    total = 0
    for seg, frames in recorded.items():
        inks += [check_frame(y, ref, f"{seg.name} frame {i}") for i, y in enumerate(frames)]
        total += len(frames)
    assert abs(total - DURATION_S * 25) <= 1, total
    # the text is no taller than the plate: the measure found text, not something else
    assert max(inks) <= ref.overlay.box.h

    for seg in recorded:
        tags = {k.lower(): v for k, v in format_tags(seg).items()}
        assert "aigc" in tags, f"{seg.name}: no AIGC tag in {sorted(tags)}"
        aigc = json.loads(tags["aigc"])
        assert tuple(aigc) == ANNEX_E, f"{seg.name}: {aigc}"
        assert aigc["Label"] == "1"
        assert aigc["ContentProducer"] == aigc["ContentPropagator"] == "acme-shop"
        assert aigc["ProduceID"] == aigc["PropagateID"] == stream_id
        assert aigc["ReservedCode1"] == aigc["ReservedCode2"] == ""
        assert tags["ai_label"] == ref.overlay.text
