"""Avatar packs and the sprite renderer: loading, reproducible assets, measured pixels, speed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.pack import VISEME_NAMES, list_packs, load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer, _Stamp
from avatarcast.avatar.visemes import OPENNESS
from avatarcast.errors import ConfigError, UnknownNameError
from avatarcast.yuv import Sprite, YuvFrame

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets" / "avatars"
PACKS = ("mila", "daan")
DARK = 60  # luma below this, inside the mouth box, is open mouth interior


@pytest.fixture(scope="module", params=PACKS)
def rig(request: pytest.FixtureRequest) -> tuple[SpriteAvatarRenderer, YuvFrame]:
    renderer = SpriteAvatarRenderer(load_pack(request.param, ASSETS))
    base = YuvFrame(1280, 720)
    base.blit(renderer.render_background(), 0, 0)
    return renderer, base


def drawn(rig: tuple[SpriteAvatarRenderer, YuvFrame], **state: float | str) -> YuvFrame:
    renderer, base = rig
    frame = base.copy()
    renderer.draw(frame, AvatarState(**state))  # type: ignore[arg-type]
    return frame


def dark_in_mouth(renderer: SpriteAvatarRenderer, luma: np.ndarray) -> int:
    x, y, w, h = renderer.mouth_box()
    return int((luma[y : y + h, x : x + w] < DARK).sum())


def test_packs_load_with_every_viseme() -> None:
    assert set(PACKS) <= set(list_packs())
    for name in PACKS:
        pack = load_pack(name)
        assert pack.name == name and pack.version >= 1
        assert set(pack.mouths) == set(VISEME_NAMES)
        assert pack.mouths["rest"].openness == 0 and pack.mouths["AA"].openness == 1
        assert set(pack.eyes) == {"open", "half", "closed"}
        size = sum(p.stat().st_size for p in pack.root.iterdir())
        assert size < 400_000, f"{name} pack is {size} bytes"


def test_unknown_pack_names_the_available_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        load_pack("nobody")
    assert "'nobody'" in str(err.value) and "mila" in str(err.value)
    assert err.value.known == list_packs()


def test_broken_pack_names_the_file_or_field(tmp_path: Path) -> None:
    shutil.copytree(ASSETS / "mila", tmp_path / "zoe")
    (tmp_path / "zoe" / "mouth_AA.png").unlink()
    with pytest.raises(ConfigError, match=r"mouth_AA\.png"):
        load_pack("zoe", tmp_path)
    shutil.copy(ASSETS / "mila" / "mouth_AA.png", tmp_path / "zoe")
    manifest = tmp_path / "zoe" / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["mouth"]["visemes"]["O"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"mouth\.visemes\.O"):
        load_pack("zoe", tmp_path)
    manifest.write_text("{not json")
    with pytest.raises(ConfigError, match="manifest"):
        load_pack("zoe", tmp_path)


def test_assets_env_overrides_the_default_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ASSETS / "daan", tmp_path / "avatars" / "bram")
    monkeypatch.setenv("AVATARCAST_ASSETS", str(tmp_path))
    assert "bram" in list_packs()
    assert load_pack("bram").display_name == "Daan"
    assert load_pack("mila").name == "mila"  # the checkout's packs still resolve


def test_generator_is_reproducible_and_matches_committed_assets(tmp_path: Path) -> None:
    script = REPO / "scripts" / "make_avatars.py"
    runs = [
        subprocess.Popen([sys.executable, str(script), "--out", str(tmp_path / d)])
        for d in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in runs] == [0, 0]
    for name in PACKS:
        committed = sorted(p.name for p in (ASSETS / name).iterdir())
        for d in ("a", "b"):
            assert sorted(p.name for p in (tmp_path / d / name).iterdir()) == committed
        for f in committed:
            ref = (ASSETS / name / f).read_bytes()
            assert (tmp_path / "a" / name / f).read_bytes() == ref, f"{name}/{f} differs"
            assert (tmp_path / "b" / name / f).read_bytes() == ref, f"{name}/{f} differs"


def spoken(rig: tuple[SpriteAvatarRenderer, YuvFrame], viseme: str) -> YuvFrame:
    """A frame as the animator would ask for it: the viseme at its own openness."""
    return drawn(rig, viseme=viseme, mouth_open=OPENNESS[viseme])


def test_mouth_opening_shows_as_dark_pixels(rig: tuple[SpriteAvatarRenderer, YuvFrame]) -> None:
    renderer = rig[0]
    counts = {v: dark_in_mouth(renderer, spoken(rig, v).y) for v in VISEME_NAMES}
    assert counts["rest"] == 0 and counts["MBP"] == 0
    assert counts["AA"] > 300
    assert {v: renderer.pack.mouths[v].openness for v in VISEME_NAMES} == dict(OPENNESS)
    for a in VISEME_NAMES:  # monotonic-ish: clearly wider visemes never show less interior
        for b in VISEME_NAMES:
            if OPENNESS[a] >= OPENNESS[b] + 0.1:
                assert counts[a] > counts[b], (a, b, counts)
    # an energy-following animator sets mouth_open and leaves the viseme at rest
    assert dark_in_mouth(renderer, drawn(rig, viseme="rest", mouth_open=0.95).y) > 300


def test_visible_opening_follows_mouth_open(rig: tuple[SpriteAvatarRenderer, YuvFrame]) -> None:
    """The animator smooths the opening, so a viseme can arrive far from its own openness."""
    renderer = rig[0]
    for viseme in ("AA", "MBP", "U", "rest", "nonsense"):
        counts = [
            dark_in_mouth(renderer, drawn(rig, viseme=viseme, mouth_open=o / 10).y)
            for o in range(1, 11)
        ]
        assert counts[-1] > 300, (viseme, counts)
        assert all(b >= a * 0.8 for a, b in pairwise(counts)), (viseme, counts)
    for viseme in ("rest", "MBP", "nonsense"):
        assert dark_in_mouth(renderer, drawn(rig, viseme=viseme).y) == 0
    assert renderer.mouth_name(AvatarState(viseme="AA", mouth_open=0.9)) == "AA"
    assert renderer.mouth_name(AvatarState(viseme="AA", mouth_open=0.2)) != "AA"
    assert renderer.mouth_name(AvatarState(viseme="O")) == "O"  # shape only: keep it


def test_mouth_opening_survives_h264(rig: tuple[SpriteAvatarRenderer, YuvFrame]) -> None:
    renderer = rig[0]
    frames = [spoken(rig, v) for v in ("rest", "AA", "E", "rest")]
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 1280, 720, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"preset": "ultrafast", "crf": "23"}
    packets = []
    for i, f in enumerate(frames):
        vf = av.VideoFrame(1280, 720, "yuv420p")
        for plane, data in zip(vf.planes, (f.y, f.u, f.v), strict=True):
            rows = np.zeros((plane.height, plane.line_size), np.uint8)
            rows[:, : data.shape[1]] = data
            plane.update(rows.tobytes())
        vf.pts = i
        packets += codec.encode(vf)
    packets += codec.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [d for p in packets for d in decoder.decode(p)] + list(decoder.decode(None))
    counts = [dark_in_mouth(renderer, d.to_ndarray(format="gray")) for d in decoded]
    assert len(counts) == 4
    assert counts[0] < 10 and counts[3] < 10
    assert counts[1] > 250 and counts[2] > 150, counts


def test_blink_changes_only_the_eyes(rig: tuple[SpriteAvatarRenderer, YuvFrame]) -> None:
    renderer = rig[0]
    open_, closed = drawn(rig).y, drawn(rig, blink=1.0).y
    half = drawn(rig, blink=0.5).y
    changed = np.argwhere(open_ != closed)
    assert len(changed) > 300
    y = renderer.mouth_box()[1]
    assert changed[:, 0].max() < y  # above the mouth
    assert (open_ != half).sum() > 100 and (half != closed).sum() > 100


def test_head_offsets_move_the_face_and_keep_the_mouth_in_its_box(
    rig: tuple[SpriteAvatarRenderer, YuvFrame],
) -> None:
    renderer = rig[0]
    x, y, w, h = renderer.mouth_box()
    lim = renderer.pack.idle.max_head_offset_px
    for dx in (-30, -lim, 0, lim, 30):
        for dy in (-30, -lim, lim, 30):
            for breath in (-1.0, 1.0):
                pose = {"head_dx": dx, "head_dy": dy, "breath": breath}
                open_ = drawn(rig, viseme="AA", mouth_open=1.0, **pose)
                diff = np.argwhere(drawn(rig, **pose).y != open_.y)
                assert len(diff) > 100
                assert diff[:, 0].min() >= y and diff[:, 0].max() < y + h, pose
                assert diff[:, 1].min() >= x and diff[:, 1].max() < x + w, pose
    still, moved = drawn(rig).y, drawn(rig, head_dx=lim, head_dy=-lim).y
    ex, ey = x + 4, y - 80  # a patch of the face around the eyes
    patch = still[ey : ey + 40, ex : ex + 60]
    assert np.array_equal(moved[ey - lim : ey - lim + 40, ex + lim : ex + lim + 60], patch)
    assert not np.array_equal(moved[ey : ey + 40, ex : ex + 60], patch)


def test_fast_stamp_matches_plain_alpha_blit() -> None:
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (64, 48, 4), dtype=np.uint8)
    rgba[10:50, 10:40, 3] = 255
    rgba[:5, :, 3] = 0
    sprite = Sprite.from_rgba(rgba)
    ref = YuvFrame(320, 240, rng.integers(0, 256, 320 * 240 * 3 // 2, dtype=np.uint8))
    got = ref.copy()
    for x, y in ((20, 30), (0, 0), (300, 220), (-10, 100)):  # inside, corner, clipped
        ref.blit(sprite, x, y)
        _Stamp(sprite).draw(got, x, y)
        assert np.array_equal(ref.buf, got.buf), (x, y)


def test_draw_is_fast(rig: tuple[SpriteAvatarRenderer, YuvFrame]) -> None:
    renderer, base = rig
    frame = base.copy()
    poses = [
        AvatarState(viseme=v, blink=b, head_dx=dx, head_dy=dx / 2, breath=dx / 4)
        for v in ("rest", "AA", "O", "FV")
        for b in (0.0, 0.5, 1.0)
        for dx in (-4.0, -1.0, 0.0, 2.5, 4.0)
    ]
    times = []
    for i in range(300):
        t = time.perf_counter()
        renderer.draw(frame, poses[i % len(poses)])
        times.append(time.perf_counter() - t)
    assert float(np.median(times)) < 1.5e-3


def test_layout_and_background(rig: tuple[SpriteAvatarRenderer, YuvFrame]) -> None:
    renderer = rig[0]
    ax, ay, aw, ah = renderer.avatar_box()
    card_x = renderer.pack.layout["product_card"][0]
    assert ax + aw <= card_x and ay + ah == 720
    bg = renderer.render_background()
    assert bg.opaque and (bg.width, bg.height) == (1280, 720)
    assert np.array_equal(bg.y, renderer.render_background().y)
    assert float(bg.y.std()) > 3


def test_other_frame_sizes_scale_the_avatar() -> None:
    pack = load_pack("mila")
    small = SpriteAvatarRenderer(pack, frame_width=640, frame_height=360)
    frame = YuvFrame(640, 360)
    small.draw(frame, AvatarState(viseme="AA", mouth_open=1.0))
    x, y, w, h = small.mouth_box()
    assert 30 <= w <= 50 and x + w <= 640 and y + h <= 360
    assert int((frame.y[y : y + h, x : x + w] < DARK).sum()) > 40


def test_a_studio_backdrop_is_drawn_once_per_process_and_read_only() -> None:
    pack = load_pack("mila")
    first = SpriteAvatarRenderer(pack).render_background(640, 360)
    again = SpriteAvatarRenderer(pack).render_background(640, 360)
    assert again is first  # the zygote's workers share the one it drew
    with pytest.raises(ValueError, match="read-only"):
        first.y[0, 0] = 0  # no stream can change another's backdrop
    other = SpriteAvatarRenderer(load_pack("daan")).render_background(640, 360)
    assert other is not first and not np.array_equal(other.y, first.y)
