"""Acceptance of the broadcast core: an offline render measured from the decoded file."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avatarcast.avatar.visemes import openness, viseme_for
from avatarcast.health import LabelProbe, analyse, mouth_openness
from avatarcast.pipeline.render import RenderResult, label_probe, render_file
from avatarcast.pipeline.spec import ProgrammeOptions
from media_probe import decoded_digest, decoded_luma, ffprobe, rate, stream_of

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
DURATION = 16.0
FPS = 25


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RenderResult]:
    out = tmp_path_factory.mktemp("render") / "demo.mp4"
    opts = ProgrammeOptions(catalog_path=DEMO, lang="nl", seed=7)
    result = asyncio.run(render_file(opts, out=out, duration=DURATION))
    return out, result


def test_mp4_is_h264_aac_at_the_requested_duration(rendered: tuple[Path, RenderResult]) -> None:
    out, _ = rendered
    info = ffprobe(out)
    v, a = stream_of(info, "video"), stream_of(info, "audio")
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 1280, 720)
    assert rate(v) == 25.0
    assert (a["codec_name"], int(a["sample_rate"])) == ("aac", 48000)
    vdur, adur = float(v["duration"]), float(a["duration"])
    assert abs(vdur - DURATION) <= 1 / FPS
    assert abs(vdur - adur) <= 0.020
    assert int(v["nb_frames"]) == round(DURATION * FPS)


def test_mouth_follows_phonemes_in_track_and_pixels(rendered: tuple[Path, RenderResult]) -> None:
    out, result = rendered
    built = result.built
    assert built is not None
    box = built.renderer.mouth_box()
    pixels = np.array([mouth_openness(y, box) for y in decoded_luma(out)])
    track = np.array(result.mouth_track)
    assert len(track) == len(pixels) == round(DURATION * FPS)
    assert len(result.chunks) >= 3

    ms_per_frame = 1000 / FPS
    onsets_checked = silences_checked = 0
    spans: list[tuple[float, float]] = []  # speech spans in ms
    for start_pts, dur_ms, phonemes in result.chunks:
        t0 = start_pts * ms_per_frame
        spans.append((t0, t0 + dur_ms))
        # voiced onsets after a pause: the first open vowel of the sentence
        for name, start_ms, end_ms in phonemes:
            if openness(viseme_for(name, "nl")) >= 0.5 and end_ms - start_ms >= 60:
                f = int((t0 + start_ms) // ms_per_frame)
                if f + 1 >= len(track):
                    break
                assert track[f : f + 2].max() >= 0.3, (name, f, track[f - 2 : f + 3])
                onsets_checked += 1
                break
    closed_pixels = np.median(pixels[track == 0]) if (track == 0).any() else 0.0
    open_pixels = np.median(pixels[track >= 0.5])
    assert open_pixels > closed_pixels + 0.02, (open_pixels, closed_pixels)
    thr = (open_pixels + closed_pixels) / 2
    # pauses of 200 ms or more between sentences: mouth closed in track and in pixels
    for (_, end), (nxt, _) in itertools.pairwise(spans):
        if nxt - end < 200:
            continue
        first = int(np.ceil((end + ms_per_frame) / ms_per_frame))
        last = int(nxt // ms_per_frame) - 1
        for f in range(first, min(last, len(track) - 1) + 1):
            assert track[f] == 0.0, (f, track[f])
            assert pixels[f] < thr, (f, pixels[f], thr)
            silences_checked += 1
    # pixels rise with the track, within one frame of each onset
    for start_pts, _, phonemes in result.chunks:
        t0 = start_pts * ms_per_frame
        for name, start_ms, end_ms in phonemes:
            if openness(viseme_for(name, "nl")) >= 0.5 and end_ms - start_ms >= 60:
                f = int((t0 + start_ms) // ms_per_frame)
                if f + 1 < len(pixels):
                    assert pixels[f : f + 2].max() > thr, (name, f, pixels[f - 2 : f + 3])
                break
    assert onsets_checked >= 3 and silences_checked >= 5


def test_label_on_every_frame_and_card_price(rendered: tuple[Path, RenderResult]) -> None:
    out, result = rendered
    built = result.built
    assert built is not None
    probe: LabelProbe = label_probe(built.compositor)
    health = analyse(out, label=probe)
    assert health.frame_count == round(DURATION * FPS)
    assert health.label_missing_frames == []
    # the card on frame 10 is the first product's card, with its catalog price
    product = built.resolved.products[0]
    frame = decoded_luma(out)[10]
    card = built.compositor.render_card(product)
    x, y, w, h = card.box
    opaque = card.sprite.a == 255
    got = frame[y : y + h, x : x + w].astype(np.float32)[opaque]
    want = card.sprite.y.astype(np.float32)[opaque]
    if product.sale_price is not None:
        changed = {"sale_price": product.sale_price - 10}
    else:
        changed = {"price": product.price + 10}
    other = built.compositor.render_card(product.model_copy(update=changed))
    assert other.sprite.y.shape == card.sprite.y.shape
    wrong = other.sprite.y.astype(np.float32)[opaque]
    err_right = float(np.abs(got - want).mean())
    err_wrong = float(np.abs(got - wrong).mean())
    assert err_right < 3.0 and err_wrong > err_right * 1.3, (err_right, err_wrong)


def test_same_seed_gives_identical_output(tmp_path: Path) -> None:
    outs = []
    for i, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"r{i}.mp4"
        opts = ProgrammeOptions(catalog_path=DEMO, lang="en", seed=seed)
        asyncio.run(render_file(opts, out=out, duration=4.0))
        outs.append(decoded_digest(out))
    assert outs[0] == outs[1]
    assert outs[0][2] == 100
    assert outs[0][:2] != outs[2][:2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _bad_catalog(tmp: Path, mutate: str) -> Path:
    products = json.loads(DEMO.read_text())
    products = products["products"] if isinstance(products, dict) else products
    if mutate == "missing_price":
        del products[1]["price"]
    elif mutate == "bad_price":
        products[1]["price"] = "abc"
    path = tmp / f"{mutate}.json"
    path.write_text(json.dumps(products))
    return path


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing_price", "price"),
        ("bad_price", "abc"),
        ("lang", "xx"),
        ("avatar", "nobody"),
        ("voice", "robot-9"),
        ("out_dir", "no-such-dir"),
        ("catalog_missing", "missing.json"),
    ],
)
def test_bad_input_fails_clearly_without_output(tmp_path: Path, case: str, expect: str) -> None:
    out = tmp_path / "out.mp4"
    catalog = DEMO
    extra: list[str] = []
    if case in ("missing_price", "bad_price"):
        catalog = _bad_catalog(tmp_path, case)
    elif case == "lang":
        extra = ["--lang", "xx"]
    elif case == "avatar":
        extra = ["--avatar", "nobody"]
    elif case == "voice":
        extra = ["--voice", "robot-9"]
    elif case == "out_dir":
        out = tmp_path / "no-such-dir" / "out.mp4"
    elif case == "catalog_missing":
        catalog = tmp_path / "missing.json"
    r = _cli(
        "render",
        "--catalog",
        str(catalog),
        "--duration",
        "2",
        "--out",
        str(out),
        *extra,
        cwd=tmp_path,
    )
    assert r.returncode != 0
    assert expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert list(tmp_path.glob("*.mp4*")) == [] and list(tmp_path.glob(".*.mp4*")) == []


def test_spoken_disclosure_opens_and_repeats(tmp_path: Path) -> None:
    """The AI disclosure is the first sentence and comes back at the configured interval.

    48 s: the second is due at 30 s and said by 45 s (when the sentence then being said ends),
    which is all a 75 s render guaranteed too (a third, due at 60-75 s, was not); 10.6 CPU s
    at 75 s, a 720p frame each 40 ms of it."""
    out, transcript = tmp_path / "d.mp4", tmp_path / "d.jsonl"
    r = _cli(
        "render", "--catalog", str(DEMO), "--lang", "nl", "--duration", "48", "--out", str(out),
        "--transcript", str(transcript), "--disclosure-every", "30",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    said = [x["t"] for x in lines if x["source"] == "disclosure"]
    assert said[0] == 0.0 and lines[0]["source"] == "disclosure"
    assert "AI" in lines[0]["text"]
    assert len(said) >= 2 and all(30.0 <= b - a <= 45.0 for a, b in itertools.pairwise(said))
