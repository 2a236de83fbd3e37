"""Acceptance of one stream in two shapes: landscape for YouTube, portrait for TikTok.

Both destinations are a real nginx-rtmp; both are read back from the server while the stream
runs. Each must have its own size, the AI label (read by OCR) and the AIGC metadata, and at
the same media time both must show the same caption (read by OCR from each picture).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from avatarcast.errors import ConfigError
from avatarcast.pipeline.build import ProgrammeOptions
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.programme.drawing import Box
from avatarcast.programme.layout import safe_zones
from media_probe import ffprobe, stream_of
from ocr import ocr_text, ocr_words
from rtmp_server import RtmpServer

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
FPS = 25


def _read(url: str, seconds: float, out: dict[int, np.ndarray], errors: list[str]) -> None:
    """Decode ``url`` for ``seconds`` of media; keep one RGB frame per media second (by pts)."""
    try:
        with av.open(url, options={"rw_timeout": "8000000"}, timeout=10) as c:
            stream = c.streams.video[0]
            first: float | None = None
            for frame in c.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                t = float(frame.time)
                first = t if first is None else first
                n = round(t * FPS)
                if n % FPS == 0:
                    out[n] = frame.to_ndarray(format="rgb24")
                if t - first >= seconds:
                    break
    except Exception as e:  # reported by the test, with the URL's stream name
        errors.append(f"{url.rsplit('/', 1)[-1]}: {e!r}")


def _crop(rgb: np.ndarray, box: Box) -> np.ndarray:
    return np.ascontiguousarray(rgb[box.y : box.bottom, box.x : box.right])


def _words(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch == " ").split())


async def test_one_stream_two_layouts_to_two_destinations(
    rtmp_server: RtmpServer, tmp_path: Path
) -> None:
    wide, tall = rtmp_server.url("youtube-key"), rtmp_server.url("tiktok-key")
    control = LiveControl()
    opts = LiveOptions(
        programme=ProgrammeOptions(
            catalog_path=DEMO, lang="en", size="720p", preset="youtube", seed=2
        ),
        destinations=(wide, tall),
        destination_layouts=(None, "720x1280/tiktok"),
        duration=12,
    )
    task = asyncio.create_task(run_live(opts, control=control))
    # both published (was a fixed 3 s); then 7 s of media from each, ~7 whole seconds in common
    while [d.state for d in control.status().destinations] != ["connected"] * 2:
        assert not task.done(), task
        await asyncio.sleep(0.1)
    frames: dict[str, dict[int, np.ndarray]] = {"wide": {}, "tall": {}}
    errors: list[str] = []
    readers = [
        threading.Thread(target=_read, args=(url, 7.0, frames[key], errors))
        for key, url in (("wide", wide), ("tall", tall))
    ]
    for r in readers:
        r.start()
    info = {
        key: await asyncio.to_thread(ffprobe, url, timeout=30)
        for key, url in (("wide", wide), ("tall", tall))
    }
    status = control.status().as_dict()
    await asyncio.gather(*(asyncio.to_thread(r.join, 60) for r in readers))
    built = control.built
    assert built is not None and control.views
    wide_comp, tall_comp = built.compositor, control.views[0].compose
    final = (await task).as_dict()
    assert not errors, errors

    # sizes, codecs and the implicit label, as the server hands them out
    for key, (w, h) in (("wide", (1280, 720)), ("tall", (720, 1280))):
        v = stream_of(info[key], "video")
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", w, h), key
        assert stream_of(info[key], "audio")["codec_name"] == "aac"
        tags = {k.lower(): val for k, val in info[key]["format"].get("tags", {}).items()}
        assert json.loads(tags["aigc"])["Label"] == "1", key
        assert frames[key] and all(f.shape[:2] == (h, w) for f in frames[key].values()), key

    # the visible label, read by OCR, at least 5 % of the short side, clear of each app's UI
    for key, preset, (w, h) in (("wide", "youtube", (1280, 720)), ("tall", "tiktok", (720, 1280))):
        safe = safe_zones(preset, w, h)
        for n, rgb in sorted(frames[key].items())[1:3]:
            label = [x for x in ocr_words(rgb) if "generated" in x.text.lower()]
            assert label, (key, n)
            word = max(label, key=lambda x: x.h)
            assert word.h >= 0.05 * min(w, h), (key, n, word)
            assert not safe.hits(Box(word.x, word.y, word.w, word.h)), (key, n, word)

    # the same sentence at the same media time in both shapes
    common = sorted(set(frames["wide"]) & set(frames["tall"]))
    assert len(common) >= 5, (sorted(frames["wide"]), sorted(frames["tall"]))
    compared = 0
    for n in common:
        a = _words(ocr_text(_crop(frames["wide"][n], wide_comp.region_of("caption"))))
        b = _words(ocr_text(_crop(frames["tall"][n], tall_comp.region_of("caption"))))
        if len(a) < 12 and len(b) < 12:
            continue  # no caption on this frame (between sentences)
        ratio = difflib.SequenceMatcher(None, a, b).ratio()
        assert ratio >= 0.8, (n, a, b)
        compared += 1
        if compared == 3:
            break
    assert compared >= 2, "too few frames with a caption to compare"

    layouts = {lay["layout"]: lay for lay in status["layouts"]}
    assert set(layouts) == {"720p/youtube", "720x1280/tiktok"}
    assert [d["layout"] for d in status["destinations"]] == ["720p/youtube", "720x1280/tiktok"]
    assert len(layouts["720x1280/tiktok"]["destinations"]) == 1
    assert len(layouts["720p/youtube"]["destinations"]) == 1
    assert final["state"] == "stopped"
    assert "tiktok-key" not in json.dumps(final)


async def test_unknown_destination_layout_refused_before_going_live() -> None:
    opts = LiveOptions(
        programme=ProgrammeOptions(catalog_path=DEMO, lang="en"),
        destinations=("rtmp://127.0.0.1:1/live/x",),
        destination_layouts=("720x1280/snapchat",),
        duration=1,
    )
    with pytest.raises(ConfigError, match="douyin, instagram, none, tiktok, youtube"):
        await run_live(opts)
