"""HLS past MPEG-TS's 33-bit timestamps (2^33 ticks of 90 kHz: 26.5 hours), tested like the
other long-run limits (``test_long_run.py``): the programme clock starts just before the limit
and what the sink wrote is read back, each segment as it is stored and the playlist as a player
reads it. Programme time goes out as it is (no rebasing), so the timestamps wrap inside the
run; a player that follows the playlist must see one frame duration between every two frames,
across the wrap too."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

from avatarcast.frames import StreamFormat
from avatarcast.output.encoder import Encoder
from avatarcast.output.hls import HlsOptions, HlsSink
from synthetic_programme import frames

FMT = StreamFormat(width=320, height=180, fps=25, metadata={})
WRAP = 2**33  # ticks of the 90 kHz MPEG-TS clock
BEFORE_S = 2.0  # the run starts this long before the wrap
SECONDS = 6.0


def _pts(target: Path, kind: str, *, raw: bool = False) -> list[int]:
    """The ``kind`` packets' pts in ``target`` (a segment or the playlist); ``raw``: as stored,
    without FFmpeg's correction of a single overflow."""
    done = subprocess.run(
        [
            "ffprobe", "-v", "error", *(["-correct_ts_overflow", "0"] if raw else []),
            "-select_streams", "v" if kind == "video" else "a",
            "-show_entries", "packet=pts", "-of", "json", str(target),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    packets: list[dict[str, Any]] = json.loads(done.stdout)["packets"]
    return [int(p["pts"]) for p in packets]


async def _write(folder: Path) -> None:
    """``SECONDS`` of programme from ``BEFORE_S`` before the wrap, encoded into the sink."""
    encoder = Encoder(FMT)
    sink = HlsSink(folder, options=HlsOptions(), metadata={})
    await sink.open(encoder.headers)
    start = round((WRAP / 90_000 - BEFORE_S) * FMT.fps)
    for frame in frames(FMT, SECONDS, start=start):
        await sink.write_batch(encoder.encode(frame))
    await sink.write_batch(encoder.flush())
    await sink.aclose()


def test_hls_timestamps_wrap_without_a_jump(tmp_path: Path) -> None:
    asyncio.run(_write(tmp_path))
    playlist = tmp_path / "index.m3u8"
    text = playlist.read_text()
    segments = sorted(tmp_path.glob("*.ts"))
    assert len(segments) == 3 and text.count("#EXTINF:2.000,") == 3, text
    assert "#EXT-X-DISCONTINUITY" not in text
    # as stored: the first segment just below 2^33, the next one past the wrap
    first, second = _pts(segments[0], "video", raw=True), _pts(segments[1], "video", raw=True)
    assert WRAP - 3 * 90_000 < first[0] < WRAP and first[-1] < WRAP, first[:2]
    assert 0 <= second[0] < 90_000, second[:2]
    # as a player reads the playlist: every frame one frame duration after the last
    video = _pts(playlist, "video")
    assert len(video) == SECONDS * FMT.fps
    assert {(b - a) % WRAP for a, b in itertools.pairwise(video)} == {90_000 // FMT.fps}
    audio = _pts(playlist, "audio")
    steps = {(b - a) % WRAP for a, b in itertools.pairwise(audio)}
    assert steps == {1024 * 90_000 // FMT.sample_rate}, steps  # one AAC frame each
