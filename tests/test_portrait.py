"""Acceptance of portrait programmes: a 720x1280 render for TikTok, measured from the file.

The label is found by OCR (tesseract) on whole decoded frames, so the test checks what a
viewer would read, where it is, and how tall its letters are; the platform's covered areas
come from the preset, not from the compositor's own word.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from avatarcast.avatar.pack import list_packs, load_pack
from avatarcast.frames import StreamFormat
from avatarcast.health import mouth_openness
from avatarcast.pipeline.build import ProgrammeOptions
from avatarcast.pipeline.layouts import make_view
from avatarcast.pipeline.render import RenderResult, render_file
from avatarcast.programme.compositor import SellerInfo
from avatarcast.programme.drawing import Box
from avatarcast.programme.layout import PRESETS, Layout, safe_zones
from avatarcast.programme.overlays import LabelConfig
from media_probe import decoded_luma, ffprobe, rate, stream_of
from ocr import ocr_words

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
DURATION = 8.0
FPS = 25
SIZE, PRESET = "720x1280", "tiktok"


def _opts(seed: int = 5) -> ProgrammeOptions:
    return ProgrammeOptions(
        catalog_path=DEMO,
        lang="en",
        seed=seed,
        size=SIZE,
        preset=PRESET,
        seller=("Acme Home", "acme.example"),
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RenderResult]:
    out = tmp_path_factory.mktemp("portrait") / "portrait.mp4"
    result = asyncio.run(render_file(_opts(), out=out, duration=DURATION))
    return out, result


def _rgb_frames(path: Path, every: int) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [
            (i, f.to_ndarray(format="rgb24"))
            for i, f in enumerate(c.decode(video=0))
            if i % every == 0
        ]


def test_portrait_mp4_is_720x1280_h264_25fps_with_aac(rendered: tuple[Path, RenderResult]) -> None:
    out, _ = rendered
    info = ffprobe(out)
    v, a = stream_of(info, "video"), stream_of(info, "audio")
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 720, 1280)
    assert rate(v) == 25.0
    assert (a["codec_name"], int(a["sample_rate"])) == ("aac", 48000)
    assert int(v["nb_frames"]) == round(DURATION * FPS)


def test_label_read_by_ocr_in_every_sampled_frame_clear_of_tiktok_ui(
    rendered: tuple[Path, RenderResult],
) -> None:
    out, _ = rendered
    safe = safe_zones(PRESET, 720, 1280)
    assert safe.covered, "the tiktok preset must cover something"
    samples = _rgb_frames(out, every=FPS * 2)
    assert len(samples) == DURATION / 2
    for i, rgb in samples:
        words = ocr_words(rgb)
        label = [w for w in words if "generated" in w.text.lower()]
        assert label, f"frame {i}: OCR did not read the label; read {[w.text for w in words]}"
        word = max(label, key=lambda w: w.h)
        box = Box(word.x, word.y, word.w, word.h)
        assert word.h >= 0.05 * 720, f"frame {i}: label text {word.h} px < 5% of 720"
        assert not safe.hits(box), f"frame {i}: label {box} under {safe.hits(box)}"
        # the card and the seller are readable too, and clear of the app's UI
        for needle in ("airfryer", "acme"):
            found = [w for w in words if needle in w.text.lower()]
            assert found, f"frame {i}: OCR did not read {needle!r}: {[w.text for w in words]}"
            for w in found:
                assert not safe.hits(Box(w.x, w.y, w.w, w.h)), (i, needle, w)


def test_overlays_stay_out_of_every_presets_covered_areas() -> None:
    pack = load_pack(list_packs()[0])
    fmt = StreamFormat(width=1280, height=720, fps=25)
    cases = [(size, preset) for size in ("720x1280", "720p") for preset in PRESETS]
    cases += [("1080x1920", "instagram"), ("1080p", "tiktok")]  # the plan scales with the size
    for size, preset in cases:
        view = make_view(
            pack,
            Layout(size, preset),
            fmt=fmt,
            lang="nl",
            label=LabelConfig(),
            seller=SellerInfo(name="Acme Home", contact="acme.example"),
        )
        comp, safe = view.compositor, view.safe
        w, h = comp.width, comp.height
        for name in ("label", "card", "caption", "seller"):
            box = comp.region_of(name)  # type: ignore[arg-type]
            assert not safe.hits(box), (size, preset, name, box, safe.hits(box))
            assert box.x >= 0 and box.y >= 0 and box.right <= w and box.bottom <= h
        assert comp.label.text_box.h >= 0.05 * min(w, h)
        # the face (the mouth at any head offset) stays clear of the app and the overlays
        mouth = Box(*view.renderer.mouth_box())
        assert not safe.hits(mouth), (size, preset)
        for name in ("label", "card", "caption", "seller"):
            assert not comp.region_of(name).intersects(mouth), (size, preset, name)  # type: ignore[arg-type]


def test_mouth_region_moves_with_the_voice(rendered: tuple[Path, RenderResult]) -> None:
    out, result = rendered
    assert result.built is not None
    box = result.built.renderer.mouth_box()
    pixels = np.array([mouth_openness(y, box) for y in decoded_luma(out)])
    track = np.array(result.mouth_track)
    assert len(pixels) == len(track) == round(DURATION * FPS)
    assert (track >= 0.5).sum() > 10 and (track == 0).sum() > 10
    open_px, closed_px = np.median(pixels[track >= 0.5]), np.median(pixels[track == 0])
    assert open_px > closed_px + 0.02, (open_px, closed_px)
    assert np.corrcoef(pixels, track)[0, 1] > 0.6


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    digests = []
    for i, seed in enumerate((9, 9, 10)):
        out = tmp_path / f"p{i}.mp4"
        asyncio.run(render_file(_opts(seed), out=out, duration=3.0))
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--size", "720x720", "1080p, 1080x1920, 720p, 720x1280"),
        ("--preset", "snapchat", "douyin, instagram, none, tiktok, youtube"),
    ],
)
def test_unknown_size_or_preset_exits_2_naming_the_allowed_values(
    tmp_path: Path, flag: str, value: str, allowed: str
) -> None:
    out = tmp_path / "x.mp4"
    cmd = [sys.executable, "-m", "avatarcast.cli", "render", "--catalog", str(DEMO)]
    cmd += ["--duration", "2", "--out", str(out), flag, value]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    text = " ".join((proc.stderr + proc.stdout).split())
    assert value in text and allowed in text, text
    assert not out.exists()


def test_cli_destination_layout_prefix() -> None:
    from avatarcast.cli import _target

    assert _target("720x1280/tiktok=rtmp://h.example/app/k") == (
        "720x1280/tiktok",
        "rtmp://h.example/app/k",
    )
    assert _target("rtmp://h.example/app/k") == (None, "rtmp://h.example/app/k")
    srt = "srt://h.example:9000?streamid=abc"
    assert _target(srt) == (None, srt)  # an "=" inside the URL is not a layout
