"""The idle loop's still parts made still: a camera's grain gone where nothing moves (so the
stream's x264 can skip those blocks), every real movement kept, and the same bytes per run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from avatarcast.twinprep import media
from avatarcast.twinprep.loop import Stability
from avatarcast.twinprep.loop import stabilise as stabilise_in_place
from avatarcast.twinprep.testmedia import portrait_canvas

U8 = npt.NDArray[np.uint8]
N = 30
SQUARE = 40  # the moving part: a bright square crossing the middle


def recording(grain: float, seed: int = 3) -> tuple[list[U8], list[U8]]:
    """``N`` frames of a still picture with a square moving across it, with and without
    camera grain (the clean frames are what the grain hides)."""
    base = portrait_canvas(320, 180)[0]
    rng = np.random.default_rng(seed)
    clean, noisy = [], []
    for i in range(N):
        img = base.copy()
        x = 100 + 2 * i  # 2 px a frame, as a slow hand moves
        img[70 : 70 + SQUARE, x : x + SQUARE] = (240, 200, 40)
        clean.append(img)
        g = rng.normal(0.0, grain, (*img.shape[:2], 1)) + rng.normal(0.0, grain / 2, img.shape)
        noisy.append(np.clip(np.rint(img + g), 0, 255).astype(np.uint8))
    return clean, noisy


def stabilise(frames: list[U8]) -> tuple[list[U8], Stability]:
    """``loop.stabilise`` on copies (it changes the frames it is given)."""
    out = [f.copy() for f in frames]
    return out, stabilise_in_place(out)


def far_from_the_square(shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """Pixels the square never comes within 20 px of (its path is x 100..198, y 70..110)."""
    far = np.ones(shape[:2], bool)
    far[50:130, 80 : 100 + 2 * N + SQUARE + 20] = False
    return far


def decoded(frames: list[U8]) -> list[U8]:
    """The frames through the pack's idle.mp4 (near-lossless H.264) and back, as luma."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "idle.mp4"
        media.write_loop(path, frames, 25)
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def test_still_parts_are_the_same_bytes_in_every_frame_and_motion_stays() -> None:
    clean, noisy = recording(grain=2.5)
    out, stability = stabilise(noisy)
    far = far_from_the_square(noisy[0].shape)
    # where nothing moves: one picture for the whole loop, across the loop point too
    for f in out[1:]:
        assert np.array_equal(f[far], out[0][far])
    assert not all(np.array_equal(f[far], noisy[0][far]) for f in noisy[1:])  # grain was there
    # ... and that picture is the clean one: the grain's mean is within a level of it
    err = np.abs(out[0][far].astype(np.int16) - clean[0][far]).astype(np.float32)
    assert float(err.mean()) < 0.7 and float(np.percentile(err, 99)) <= 2.0
    assert 0.5 < stability.still < 1.0
    # the square still moves: its yellow (blue channel low) is where the input put it
    for i in (0, N // 2, N - 1):
        x = 100 + 2 * i
        inside = out[i][75 : 65 + SQUARE, x + 5 : x + SQUARE - 5]
        assert float(inside[..., 2].mean()) < 80, i  # yellow, not the backdrop
        assert np.array_equal(inside, noisy[i][75 : 65 + SQUARE, x + 5 : x + SQUARE - 5])
    # the same frames in, the same bytes out
    again, _ = stabilise(noisy)
    assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))


def test_the_still_parts_stay_the_same_bytes_through_the_packs_idle_mp4() -> None:
    """What the live encoder reads is the decoded idle.mp4: there the still parts must be
    identical frame to frame too (x264 skips a block only when nothing in it changed)."""
    _, noisy = recording(grain=2.5)
    far = far_from_the_square(noisy[0].shape)
    before, after = decoded(noisy), decoded(stabilise(noisy)[0])

    def changed(frames: list[U8]) -> float:
        """The share of still pixels that differ from the frame before (the loop's last
        frame counted before its first)."""
        pairs = zip(frames, frames[1:] + frames[:1], strict=True)
        return float(np.mean([(a[far] != b[far]).mean() for a, b in pairs]))

    assert changed(before) > 0.5  # the grain changes most pixels in every frame
    assert changed(after) < 0.02


def test_a_loop_with_nothing_still_is_left_as_it_was() -> None:
    """Every pixel moving (the whole picture sways by whole pixels, no grain): nothing is
    replaced by a mean that would smear the motion."""
    base = portrait_canvas(320, 180)[0]
    frames = [np.roll(base, (i % 7) - 3, axis=1) for i in range(N)]
    out, stability = stabilise(frames)
    edges = np.abs(np.diff(base.astype(np.int16), axis=1)).max(axis=2) > 40
    cols = np.zeros(base.shape[:2], bool)
    cols[:, :-1] = edges
    for f, o in zip(frames, out, strict=True):
        assert np.array_equal(o[cols], f[cols])  # every strong edge moves as it did
    assert stability.still < 0.5
