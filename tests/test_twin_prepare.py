"""Preparing a twin on two cores: the face-finding pass split over two processes gives the same
track, bit for bit, as one pass, and the same pack; errors name the same frame."""

from __future__ import annotations

import json
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.errors import ConfigError
from avatarcast.twinprep.build import prepare_video
from avatarcast.twinprep.scripts import reading_script
from avatarcast.twinprep.testmedia import make_test_video, portrait_canvas
from avatarcast.twinprep.track import FirstPass, first_pass

U8 = npt.NDArray[np.uint8]


def write_video(path: Path, frames: list[U8]) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = Fraction(1, 25)
        s.options = {"crf": "18", "preset": "ultrafast", "threads": "1", "g": "12"}
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def face() -> U8:
    return portrait_canvas(640, 360)[0]


def swaying(face: U8, n: int, *, blank: Iterable[int] = (), two_at: int = -1) -> list[U8]:
    """``n`` frames of the face moving a few pixels (a grey frame on ``blank`` ones); with
    ``two_at`` the frames are twice as tall, the face at the top, and on frame ``two_at``
    at the bottom too (taller, not wider: the whole-frame search scales by the width)."""
    grey, gone = np.full_like(face, 96), set(blank)
    out = []
    for i in range(n):
        dx, dy = round(6 * np.sin(i / 5)), round(3 * np.cos(i / 7))
        moved = np.roll(np.roll(face, dx, axis=1), dy, axis=0)
        img = grey if i in gone else moved
        if two_at >= 0:
            img = np.concatenate([img, moved if i == two_at else grey], axis=0)
        out.append(img)
    return out


def same(a: FirstPass, b: FirstPass) -> None:
    assert a.frames == b.frames
    assert np.array_equal(a.track.boxes, b.track.boxes)
    assert np.array_equal(a.track.landmarks, b.track.landmarks)
    assert len(a.thumbs) == len(b.thumbs)
    assert all(np.array_equal(x, y) for x, y in zip(a.thumbs, b.thumbs, strict=True))


def test_the_split_face_pass_is_the_one_pass(face: U8, tmp_path: Path) -> None:
    # no face on frames 25-26: a second process starting at 25 cannot know the box that one
    # pass carries over them, so this process goes on through its part (and says so)
    video = write_video(tmp_path / "sway.mp4", swaying(face, 80, blank=(25, 26)))
    one = first_pass(video, source="sway", frames_hint=80, split_at=0)
    assert one.processes == 1 and one.frames == 80
    assert len(set(map(tuple, one.track.boxes.tolist()))) > 5  # the head moves: boxes differ
    split = first_pass(video, source="sway", frames_hint=80, split_at=50)
    assert split.processes == 2
    same(one, split)
    carried = first_pass(video, source="sway", frames_hint=80, split_at=25)
    assert carried.processes == 1
    same(one, carried)
    short = first_pass(video, source="sway", frames_hint=200, split_at=100)  # hint too high
    same(one, short)


def test_a_split_pass_names_the_same_frame_in_its_errors(face: U8, tmp_path: Path) -> None:
    video = write_video(tmp_path / "two.mp4", swaying(face, 55, two_at=50))
    for split in (0, 25, 50):  # found by this process, by the second, at the second's start
        with pytest.raises(ConfigError, match=r"two\.mp4: frame 50 shows 2 faces"):
            first_pass(video, source=str(video), frames_hint=55, split_at=split)
    video = write_video(tmp_path / "gone.mp4", swaying(face, 40, blank=range(28, 36)))
    for split in (0, 25):
        with pytest.raises(ConfigError, match=r"gone\.mp4: no clear face in frame 28 and the 5"):
            first_pass(video, source=str(video), frames_hint=40, split_at=split)
    # the faceless run straddles the split: this process goes on through the second part
    video = write_video(tmp_path / "across.mp4", swaying(face, 40, blank=range(22, 30)))
    with pytest.raises(ConfigError, match=r"across\.mp4: no clear face in frame 22 and the 5"):
        first_pass(video, source=str(video), frames_hint=40, split_at=25)
    with pytest.raises(ValueError, match="split_at=30: a pass splits only at a multiple of 25"):
        first_pass(video, source=str(video), frames_hint=40, split_at=30)


def test_a_pack_prepared_on_two_processes_is_the_same_pack(tmp_path: Path) -> None:
    video = make_test_video(tmp_path / "astro.mp4", sentences=1, silence_s=3.0)
    text = reading_script("en").split(".")[0].strip() + "."
    packs = []
    for split in (0, 50):
        root = tmp_path / f"split{split}"
        packs.append(prepare_video(video, name="astro", root=root, script=text, split_at=split))
    a, b = (json.loads((p / "manifest.json").read_text()) for p in packs)
    assert a["source"]["frames"] > 100
    for m in (a, b):
        m.pop("created")
    assert a == b  # the files' sha256 are in it
    for f in ("idle.mp4", "mask.png", "patches.npz"):
        assert (packs[0] / f).read_bytes() == (packs[1] / f).read_bytes()


def test_a_patch_from_a_tilted_head_is_cut_in_the_loops_pose(face: U8) -> None:
    """The head tilted 7 degrees and 6 % nearer: cut through the landmarks' similarity
    transform, the patch matches the upright frame's mouth box; a plain cut of the tilted
    frame's own box does not."""
    from PIL import Image

    from avatarcast.twinprep.faces import FaceFinder
    from avatarcast.twinprep.mouth import BOX_SIDE, box_for, cut, face_width
    from avatarcast.twinprep.pose import cut_posed, similarity

    def marks(img: U8) -> npt.NDArray[np.float32]:
        finder = FaceFinder("tilt")
        finder.add(0, img)
        return finder.track().landmarks[0]

    up = marks(face)
    h, w = face.shape[:2]
    big = Image.fromarray(face).resize((round(w * 1.06), round(h * 1.06)), Image.Resampling.BICUBIC)
    big = big.crop((0, 0, w, h))
    centre = (float(up[30, 0]) * 1.06, float(up[30, 1]) * 1.06)
    tilted = np.asarray(big.rotate(7, Image.Resampling.BICUBIC, center=centre))
    lm = marks(tilted)
    side = BOX_SIDE * face_width(up)
    box = box_for(up, side)
    want = cut(face, box, 96).astype(np.float32)
    assert np.array_equal(cut_posed(face, similarity(up, up), box, 96), cut(face, box, 96))
    posed = cut_posed(tilted, similarity(lm, up), box, 96).astype(np.float32)
    plain = cut(tilted, box_for(lm, side * face_width(lm) / face_width(up)), 96)
    err_posed = float(np.abs(posed - want).mean())
    err_plain = float(np.abs(plain.astype(np.float32) - want).mean())
    assert err_posed < 0.4 * err_plain, (err_posed, err_plain)
