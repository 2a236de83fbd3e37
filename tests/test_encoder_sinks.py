"""The one encoder and the file sinks, checked on the files they write (ffprobe, decoding)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from avatarcast.errors import OutputError
from avatarcast.frames import EncodedPacket, StreamFormat
from avatarcast.output.base import Sink
from avatarcast.output.encoder import Encoder
from avatarcast.output.mp4 import Mp4FileSink, NullSink
from avatarcast.output.recording import SegmentedRecorder
from synthetic_programme import ffprobe, frames, psnr

FMT = StreamFormat(width=1280, height=720, fps=25, metadata={"title": "Demo programme"})
AIGC = json.dumps({"Label": "1", "ContentProducer": "avatarcast"})


async def run(sinks: list[Sink], seconds: float, enc: Encoder | None = None) -> Encoder:
    enc = enc or Encoder(FMT)
    for s in sinks:
        await s.open(enc.headers)
    for frame in frames(FMT, seconds):
        for p in await asyncio.to_thread(enc.encode, frame):
            for s in sinks:
                await s.write(p)
    for p in await asyncio.to_thread(enc.flush):
        for s in sinks:
            await s.write(p)
    for s in sinks:
        await s.aclose()
    return enc


def names(directory: Path) -> list[str]:
    return sorted(f.name for f in directory.iterdir())


def stream(info: dict[str, object], kind: str) -> dict[str, str]:
    streams = info["streams"]
    assert isinstance(streams, list)
    (found,) = [s for s in streams if s["codec_type"] == kind]
    return found  # type: ignore[no-any-return]


def test_encoder_packets_are_time_ordered_with_fixed_gop() -> None:
    enc = Encoder(FMT)
    out: list[EncodedPacket] = []
    for f in frames(FMT, 4.2):
        out += enc.encode(f)
    out += enc.flush()
    assert enc.flush() == []
    starts = [p.dts * p.time_base for p in out]
    assert starts == sorted(starts)
    video = [p for p in out if p.kind == "video"]
    assert [p.pts for p in video] == list(range(105))
    assert all(p.pts == p.dts for p in video)  # no B-frames: no reordering
    assert [p.pts for p in video if p.keyframe] == [0, 50, 100]
    audio = [p for p in out if p.kind == "audio"]
    assert audio[0].time_base == Fraction(1, 48000)
    # every sample is encoded; the AAC encoder adds one priming frame in front
    assert audio[0].pts == -1024
    assert sum(p.duration for p in audio) == 105 * 1920 + 1024
    assert enc.headers.video_extradata.startswith(b"\x00\x00\x00\x01\x67")
    assert enc.headers.audio_frame_size == 1024


async def test_mp4_matches_the_request(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    meta = {"comment": "synthetic", "aigc": AIGC}
    await run([Mp4FileSink(target, metadata=meta)], 4.0)
    info = ffprobe(target, "-show_streams", "-show_format")
    v, a = stream(info, "video"), stream(info, "audio")
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 1280, 720)
    assert v["r_frame_rate"] == v["avg_frame_rate"] == "25/1"
    assert v["has_b_frames"] == 0
    assert v["pix_fmt"] == "yuv420p"
    assert (v["color_space"], v["color_range"]) == ("smpte170m", "tv")
    assert (a["codec_name"], a["sample_rate"], a["channels"]) == ("aac", "48000", 1)
    assert abs(float(info["format"]["duration"]) - 4.0) <= 1 / 25
    assert abs(float(v["duration"]) - float(a["duration"])) <= 0.020
    tags = info["format"]["tags"]
    assert tags["title"] == "Demo programme"
    assert tags["comment"] == "synthetic"
    assert json.loads(tags["aigc"]) == json.loads(AIGC)

    shown = ffprobe(target, "-select_streams", "v", "-show_entries", "frame=key_frame,pict_type")
    kinds = [(f["key_frame"], f["pict_type"]) for f in shown["frames"]]
    assert len(kinds) == 100
    assert [i for i, (key, _) in enumerate(kinds) if key] == [0, 50]
    assert {t for _, t in kinds} <= {"I", "P"}
    assert names(tmp_path) == ["out.mp4"]


async def test_decoded_frames_match_the_input(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    await run([Mp4FileSink(target, metadata={})], 2.0)
    source = {f.pts: f for f in frames(FMT, 2.0)}
    with av.open(str(target)) as container:
        decoded = list(container.decode(video=0))
        container.seek(0)
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert len(decoded) == 50
    w, h = FMT.width, FMT.height
    for i in (0, 13, 49):
        got = decoded[i].to_ndarray(format="yuv420p").reshape(-1)
        want = source[i].yuv
        assert psnr(got[: w * h], want[: w * h]) > 35, f"luma of frame {i}"
        assert psnr(got[w * h :], want[w * h :]) > 35, f"chroma of frame {i}"
    want_pcm = np.concatenate([f.pcm for f in source.values()]).astype(np.float32) / 32768
    n = min(len(want_pcm), len(audio)) - 2048
    lag = int(np.argmax(np.correlate(audio[1024:3072], want_pcm[1024:3072], "same"))) - 1024
    assert abs(lag) <= 2, "audio is not where its samples were"
    assert psnr((audio[:n] * 127 + 128), (want_pcm[:n] * 127 + 128)) > 25


@pytest.mark.parametrize("where", ["missing-dir/out.mp4", "a-file/out.mp4"])
async def test_unwritable_path_is_an_output_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    sink = Mp4FileSink(tmp_path / where, metadata={})
    with pytest.raises(OutputError, match=str(tmp_path / where)):
        await sink.open(Encoder(FMT).headers)
    await sink.aclose()
    assert names(tmp_path) == ["a-file"]


async def test_cancelled_writing_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    started = asyncio.Event()

    async def write_forever() -> None:
        sink = Mp4FileSink(target, metadata={})
        enc = Encoder(FMT)
        await sink.open(enc.headers)
        try:
            for frame in frames(FMT, 60):
                for p in await asyncio.to_thread(enc.encode, frame):
                    await sink.write(p)
                started.set()
        finally:
            await sink.aclose()

    task = asyncio.create_task(write_forever())
    await started.wait()
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert names(tmp_path) == []


async def test_failed_block_aborts_through_async_with(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    enc = Encoder(FMT)
    with pytest.raises(RuntimeError):
        async with Mp4FileSink(target, metadata={}) as sink:
            await sink.open(enc.headers)
            for p in enc.encode(next(frames(FMT, 1))):
                await sink.write(p)
            raise RuntimeError("programme failed")
    assert names(tmp_path) == []


async def test_null_sink_counts_everything() -> None:
    sink = NullSink()
    out: list[EncodedPacket] = []
    enc = Encoder(FMT)
    await sink.open(enc.headers)
    for f in frames(FMT, 1.0):
        for p in enc.encode(f):
            out.append(p)
            await sink.write(p)
    await sink.aclose()
    assert sink.packets == len(out)
    assert sink.bytes == sum(len(p.data) for p in out)


def _playable(path: Path) -> tuple[int, float]:
    """Frames decoded and the duration ffprobe reports; decoding errors raise."""
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    return n, float(ffprobe(path, "-show_format")["format"]["duration"])


async def test_segmented_recorder_cuts_at_keyframes(tmp_path: Path) -> None:
    rec = SegmentedRecorder(tmp_path / "rec", segment_seconds=2, metadata={"aigc": AIGC})
    await run([rec], 6.0)
    index = json.loads((tmp_path / "rec" / "index.json").read_text())
    files = [s["file"] for s in index["segments"]]
    assert files == ["segment-00001.mp4", "segment-00002.mp4", "segment-00003.mp4"]
    assert [s["start"] for s in index["segments"]] == [0.0, 2.0, 4.0]
    assert [s["frames"] for s in index["segments"]] == [50, 50, 50]
    for s in index["segments"]:
        assert abs(s["duration"] - 2.0) < 0.05
        n, duration = _playable(tmp_path / "rec" / s["file"])
        assert n == 50
        assert abs(duration - 2.0) < 0.05
        tags = ffprobe(tmp_path / "rec" / s["file"], "-show_format")["format"]["tags"]
        assert json.loads(tags["aigc"]) == json.loads(AIGC)
    assert set(os.listdir(tmp_path / "rec")) == {*files, "index.json"}


def test_killed_recorder_leaves_earlier_segments_playable(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from synthetic_programme import frames
        from avatarcast.frames import StreamFormat
        from avatarcast.output.encoder import Encoder
        from avatarcast.output.recording import SegmentedRecorder

        async def main():
            fmt = StreamFormat()
            enc = Encoder(fmt)
            rec = SegmentedRecorder({str(tmp_path / "rec")!r}, segment_seconds=2, metadata={{}})
            await rec.open(enc.headers)
            for f in frames(fmt, 7.6):
                for p in enc.encode(f):
                    await rec.write(p)
            await rec._worker.drain()
            os._exit(0)

        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    index = json.loads((tmp_path / "rec" / "index.json").read_text())
    closed = [f"segment-0000{i}.mp4" for i in (1, 2, 3)]
    assert [s["file"] for s in index["segments"]] == closed
    for s in index["segments"]:
        assert _playable(tmp_path / "rec" / s["file"])[0] == 50
    # the segment being written when the process died is readable up to its last fragment
    assert 25 <= _decodable_prefix(tmp_path / "rec" / "segment-00004.mp4") < 40


def _decodable_prefix(path: Path) -> int:
    """Video frames decoded before the first damaged packet of a file cut off mid-write."""
    n = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        try:
            for packet in c.demux(stream):
                n += len(stream.codec_context.decode(packet if packet.size else None))
        except av.InvalidDataError:
            n += len(stream.codec_context.decode(None))
    return n
