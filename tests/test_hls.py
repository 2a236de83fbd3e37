"""The HLS sink on the simulated clock: files checked with ffprobe, playlists as a player sees
them while the stream runs, the AIGC date ranges, and an unwritable folder that comes back."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from avatarcast.errors import ConfigError
from avatarcast.frames import StreamFormat
from avatarcast.output.encoder import Encoder
from avatarcast.output.hls import PLAYLIST_NAME, HlsOptions, HlsSink
from avatarcast.output.hls_playlist import AIGC_CLASS, parse_dateranges, playlist_has
from synthetic_programme import ffprobe, frames

FMT = StreamFormat(width=320, height=180, fps=25, metadata={})
AIGC = json.dumps({"Label": "1", "ContentProducer": "avatarcast", "ProduceID": "s1"})
META = {"ai_label": "AI-generated", "AIGC": AIGC}


class Watcher:
    """Reads the playlist the way a player polls it, and checks every file it names exists."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: dict[int, str] = {}  # msn -> uri, over every version read
        self.texts: list[str] = []

    def poll(self) -> None:
        try:
            text = (self.folder / PLAYLIST_NAME).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return
        if self.texts and self.texts[-1] == text:
            return
        self.texts.append(text)
        first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))  # type: ignore[union-attr]
        uris = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        parts = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
        gaps = _gap_uris(text)
        for i, uri in enumerate(uris):
            assert self.seen.setdefault(first + i, uri) == uri
            if uri not in gaps:
                assert (self.folder / uri).is_file(), f"playlist names {uri} before it exists"
        for uri in parts:
            assert (self.folder / uri).is_file(), f"playlist names part {uri} before it exists"


def _gap_uris(text: str) -> set[str]:
    lines = text.splitlines()
    return {lines[i + 2] for i, ln in enumerate(lines) if ln == "#EXT-X-GAP"}


async def run(
    folder: Path,
    seconds: float,
    options: HlsOptions,
    *,
    between: dict[int, Callable[[], None]] | None = None,
) -> tuple[HlsSink, Watcher]:
    """Encode ``seconds`` of synthetic programme into an HLS sink, polling like a player.

    ``between`` maps a frame number to a callable run just before that frame is written."""
    enc = Encoder(FMT)
    sink = HlsSink(folder, options=options, metadata=META)
    watcher = Watcher(folder)
    await sink.open(enc.headers)
    for frame in frames(FMT, seconds):
        hook = (between or {}).get(frame.pts)
        if hook is not None:
            await sink._worker.drain()
            hook()
        await sink.write_batch(enc.encode(frame))
        if frame.pts % 5 == 0:
            await sink._worker.drain()
            watcher.poll()
    await sink.write_batch(enc.flush())
    await sink.aclose()
    watcher.poll()
    return sink, watcher


def _segments(text: str) -> list[tuple[float, str]]:
    lines = text.splitlines()
    return [
        (float(ln.split(":")[1].rstrip(",")), lines[i + 1])
        for i, ln in enumerate(lines)
        if ln.startswith("#EXTINF:")
    ]


def _audio_span(path: Path) -> tuple[float, float]:
    info = ffprobe(path, "-select_streams", "a", "-show_entries", "packet=pts_time,duration_time")
    times = [(float(p["pts_time"]), float(p["duration_time"])) for p in info["packets"]]
    return times[0][0], times[-1][0] + times[-1][1]


def _video_packets(path: Path) -> list[tuple[float, bool]]:
    info = ffprobe(path, "-select_streams", "v", "-show_entries", "packet=pts_time,flags")
    return [(float(p["pts_time"]), "K" in p["flags"]) for p in info["packets"]]


async def test_sixty_seconds_of_two_second_segments_on_keyframes(tmp_path: Path) -> None:
    folder = tmp_path / "hls"
    probes: list[dict[str, object]] = []

    def probe_live() -> None:  # ffprobe reads the playlist while the stream is still running
        text = (folder / PLAYLIST_NAME).read_text()
        assert "#EXT-X-ENDLIST" not in text
        probes.append(ffprobe(folder / PLAYLIST_NAME, "-show_streams"))

    sink, watcher = await run(
        folder, 60.0, HlsOptions(window=4), between={30 * FMT.fps: probe_live}
    )
    (live,) = probes
    codecs = sorted(s["codec_name"] for s in live["streams"])  # type: ignore[attr-defined]
    assert codecs == ["aac", "h264"]

    # every media sequence number from 0 to the last, each always naming the same file
    assert sorted(watcher.seen) == list(range(30)), sorted(watcher.seen)
    final = watcher.texts[-1]
    assert final.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-TARGETDURATION:2" in final
    segs = _segments(final)
    assert len(segs) == 4 and [d for d, _ in segs] == [2.0] * 4
    # the files on disk: only what the window and the keep time need
    on_disk = sorted(p.name for p in folder.glob("*.ts"))
    assert len(on_disk) <= 4 + 4 and on_disk[-1] == segs[-1][1]
    assert not list(folder.glob(".*.tmp"))
    for duration, uri in segs:
        packets = _video_packets(folder / uri)
        assert packets[0][1], f"{uri} does not start on a keyframe"
        assert [k for _, k in packets].count(True) == 1
        assert len(packets) == round(duration * FMT.fps)
        info = ffprobe(folder / uri, "-show_streams")
        assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    # successive segments follow on: each starts 2.000 s after the one before
    starts = [_video_packets(folder / uri)[0][0] for _, uri in segs]
    assert [round(b - a, 3) for a, b in itertools.pairwise(starts)] == [2.0] * 3
    st = sink.status()
    assert (st.state, st.segments, st.failures, st.gaps) == ("closed", 30, 0, 0)


async def test_aigc_label_is_a_date_range_on_every_segment(tmp_path: Path) -> None:
    _, watcher = await run(tmp_path / "hls", 8.0, HlsOptions())
    text = watcher.texts[-1]
    ranges = parse_dateranges(text)
    assert len(ranges) == len(_segments(text)) == 4
    for r, (duration, _) in zip(ranges, _segments(text), strict=True):
        assert r["CLASS"] == AIGC_CLASS
        assert json.loads(r["X-AIGC"]) == json.loads(AIGC)
        assert r["X-LABEL"] == "AI-generated"
        assert float(r["DURATION"]) == duration
    dates = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
    assert [r["START-DATE"] for r in ranges] == dates


async def test_low_latency_parts_are_listed_and_decodable(tmp_path: Path) -> None:
    folder = tmp_path / "hls"
    _, watcher = await run(folder, 9.0, HlsOptions(low_latency=True, part_seconds=0.4))
    open_parts = [t for t in watcher.texts if t.rsplit("#EXTINF:", 1)[-1].count("#EXT-X-PART:")]
    assert open_parts, "no playlist listed the parts of the segment being written"
    text = watcher.texts[-1]
    assert "#EXT-X-PART-INF:PART-TARGET=0.400" in text
    assert "CAN-BLOCK-RELOAD=YES" in text
    last = text.split("#EXTINF:")[-3]  # the parts of the last whole 2 s segment
    parts = re.findall(r'#EXT-X-PART:DURATION=([\d.]+),URI="([^"]+)"(,INDEPENDENT=YES)?', last)
    assert [float(d) for d, _, _ in parts] == [0.4] * 5
    assert [bool(i) for _, _, i in parts] == [True] + [False] * 4
    first = _video_packets(folder / parts[0][1])
    assert first[0][1] and len(first) == 10
    for _, uri, _ in parts[1:]:
        packets = _video_packets(folder / uri)
        assert len(packets) == 10 and not any(k for _, k in packets)
    # audio goes on from one part to the next, and no part ends its audio a frame early (a
    # player's buffer would end short of the part and wait for it forever)
    spans = [_audio_span(folder / uri) for _, uri, _ in parts]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert abs(start - end) < 0.001, spans
    for (v, _), (_, a_end) in zip(
        (_video_packets(folder / u)[-1] for _, u, _ in parts), spans, strict=True
    ):
        assert a_end >= v + 0.04 - 1024 / 48000 - 0.022, (v, a_end)
    # a blocking request for the next part is satisfied only by a playlist that has it
    mid = next(t for t in open_parts if "#EXT-X-ENDLIST" not in t)
    msn = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", mid).group(1)) + mid.count("#EXTINF:")  # type: ignore[union-attr]
    n = mid.rsplit("#EXTINF:", 1)[-1].count("#EXT-X-PART:")
    assert playlist_has(mid, msn, n - 1) and not playlist_has(mid, msn, n)
    assert playlist_has(mid, msn - 1, None) and not playlist_has(mid, msn, None)


async def test_unwritable_folder_is_reported_and_no_segment_is_lost(tmp_path: Path) -> None:
    """The folder is replaced by a file (root ignores permissions) for 6 s of media."""
    folder = tmp_path / "hls"
    away = tmp_path / "hls.away"
    statuses: list[str] = []
    sink_box: list[HlsSink] = []

    def break_it() -> None:
        folder.rename(away)
        folder.write_text("not a folder")

    def mend_it() -> None:
        statuses.append(sink_box[0].status().state)
        folder.unlink()
        away.rename(folder)

    enc = Encoder(FMT)
    sink = HlsSink(folder, options=HlsOptions(window=6), metadata=META)
    sink_box.append(sink)
    watcher = Watcher(folder)
    await sink.open(enc.headers)
    hooks = {4 * FMT.fps + 3: break_it, 10 * FMT.fps + 3: mend_it}
    for frame in frames(FMT, 16.0):
        if frame.pts in hooks:
            await sink._worker.drain()
            hooks[frame.pts]()
        await sink.write_batch(enc.encode(frame))
        if frame.pts % 5 == 0 and folder.is_dir():
            await sink._worker.drain()
            watcher.poll()
    await sink.write_batch(enc.flush())
    await sink.aclose()
    watcher.poll()
    assert statuses == ["failing"]
    st = sink.status()
    assert st.failures >= 3 and st.recoveries == 1 and st.gaps == 0 and st.backlog == 0
    assert st.last_error is not None and str(folder) in st.last_error
    assert sorted(watcher.seen) == list(range(8)), sorted(watcher.seen)
    assert "#EXT-X-GAP" not in "".join(watcher.texts)
    assert not list(folder.glob(".*.tmp"))


async def test_a_long_outage_becomes_gaps_not_a_jump(tmp_path: Path) -> None:
    folder = tmp_path / "hls"
    away = tmp_path / "away"

    def break_it() -> None:
        folder.rename(away)
        folder.write_text("")

    def mend_it() -> None:
        folder.unlink()
        away.rename(folder)

    options = HlsOptions(window=8, backlog_seconds=4.0)
    sink, watcher = await run(
        folder, 16.0, options, between={2 * FMT.fps + 1: break_it, 10 * FMT.fps + 1: mend_it}
    )
    text = watcher.texts[-1]
    assert sorted(watcher.seen) == list(range(8))
    assert text.count("#EXT-X-GAP") == sink.status().gaps >= 1
    assert sink.status().recoveries == 1


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="window"):
        HlsOptions(window=1).check()
    with pytest.raises(ConfigError, match="part_seconds"):
        HlsSink("unused", options=HlsOptions(part_seconds=3.0))


async def test_a_new_run_clears_the_old_one(tmp_path: Path) -> None:
    folder = tmp_path / "hls"
    await run(folder, 4.5, HlsOptions())
    first = {p.name for p in folder.glob("*.ts")}
    await run(folder, 4.5, HlsOptions())
    second = {p.name for p in folder.glob("*.ts")}
    assert first and second and not first & second
    shutil.rmtree(folder)
    await asyncio.sleep(0)
