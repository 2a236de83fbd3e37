"""A photo twin blinks: its eyes close on the animator's seeded schedule, measured in decoded
frames (the eye region changes at blink times only, the mouth never), same seed same bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatarcast.avatar.animator import Animator
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.pack import load_twin
from avatarcast.avatar.twin.patches import PatchesEngine
from avatarcast.avatar.twin.render import TwinRenderer
from avatarcast.twinprep.build import Consent, prepare_photo
from avatarcast.twinprep.testmedia import portrait_canvas
from avatarcast.yuv import YuvFrame
from media_probe import decoded_luma, encode_yuv

W, H, FRAMES = 640, 360, 250  # 10 s: two to five blinks


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> TwinClip:
    root = tmp_path_factory.mktemp("blink")
    consent = Consent(person="Eileen Collins (NASA photograph)", reference="PD", licence="PD")
    path = prepare_photo(
        None, name="still", root=root, rgb=portrait_canvas(W, H)[0], consent=consent
    )
    return TwinClip(load_twin(path / "manifest.json"))


def _render(clip: TwinClip, out: Path, seed: int) -> tuple[list[np.ndarray], list[float]]:
    r = TwinRenderer(clip, PatchesEngine(clip, fps=25), frame_width=W, frame_height=H)
    anim = Animator(fps=25, seed=seed)
    blinks = []

    def frames() -> Iterator[YuvFrame]:
        for n in range(FRAMES):
            state = anim.idle_state(n)
            blinks.append(state.blink)
            f = YuvFrame(W, H)
            r.draw(f, state)
            yield f

    encode_yuv(out, frames(), W, H)
    return decoded_luma(out), blinks


def test_a_photo_twin_blinks_on_its_seeded_schedule_only(clip: TwinClip, tmp_path: Path) -> None:
    assert clip.pack.source_kind == "photo" and len(clip.pack.eye_boxes) == 2
    luma, blinks = _render(clip, tmp_path / "a.mp4", seed=7)
    r = TwinRenderer(clip, PatchesEngine(clip, fps=25), frame_width=W, frame_height=H)
    fr, pack = r.framing, clip.pack
    xs = [b[0] for b in pack.eye_boxes] + [b[0] + b[2] for b in pack.eye_boxes]
    ys = [b[1] for b in pack.eye_boxes] + [b[1] + b[3] for b in pack.eye_boxes]
    ex0, ex1 = round(fr.x + min(xs) * fr.scale), round(fr.x + max(xs) * fr.scale)
    ey0, ey1 = round(fr.y + min(ys) * fr.scale) - 3, round(fr.y + max(ys) * fr.scale) + 1
    mx, my, mw, mh = r.mouth_box()

    def change(n: int, box: tuple[int, int, int, int]) -> float:
        x0, y0, x1, y1 = box
        idle = r.idle_frame(n).y[y0:y1, x0:x1].astype(np.float32)
        return float(np.abs(luma[n][y0:y1, x0:x1].astype(np.float32) - idle).mean())

    eyes = [change(n, (ex0, ey0, ex1, ey1)) for n in range(FRAMES)]
    mouth = [change(n, (mx, my, mx + mw, my + mh)) for n in range(FRAMES)]
    closed = [n for n, b in enumerate(blinks) if b >= 0.99]
    still = [n for n, b in enumerate(blinks) if b == 0.0]
    assert len(closed) >= 2 and len(still) > 200, blinks
    quiet = max(eyes[n] for n in still)  # codec noise only
    assert quiet < 1.5, quiet
    assert min(eyes[n] for n in closed) > 3 * max(quiet, 1.0), (
        [eyes[n] for n in closed],
        quiet,
    )
    assert max(mouth) < 1.5  # the eyes close; nothing else moves
    # the eye region changes exactly where the schedule blinks
    moved = {n for n in range(FRAMES) if eyes[n] > 2 * max(quiet, 1.0)}
    assert moved <= {n for n, b in enumerate(blinks) if b > 0.0}
    assert set(closed) <= moved
    _render(clip, tmp_path / "b.mp4", seed=7)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    other = Animator(fps=25, seed=8)
    assert [other.idle_state(n).blink for n in range(FRAMES)] != blinks  # the seed decides
