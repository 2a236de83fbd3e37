"""The guarded recording on the media clock: a write that fails (as a full disk fails it)
stops the recording and reports it, the frames keep coming, and the recording starts again
on a keyframe in a new segment that plays. ENOSPC for real is in ``test_disk_full.py``."""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avatarcast.errors import OutputError
from avatarcast.frames import EncodedPacket, StreamFormat
from avatarcast.output.encoder import Encoder
from avatarcast.output.recording import SegmentedRecorder
from avatarcast.output.recording_guard import GuardedRecorder
from media_probe import ffprobe, stream_of
from synthetic_programme import frames

FMT = StreamFormat(width=320, height=180)


class FailingAt(SegmentedRecorder):
    """A real recorder whose writes fail between ``bad`` media seconds (a disk full then)."""

    bad = (3.0, 5.5)

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        t = float(packets[0].dts * packets[0].time_base)
        if self.bad[0] <= t < self.bad[1]:
            raise OutputError("recording failed") from OSError(errno.ENOSPC, "full")
        await super().write_batch(packets)


async def test_a_failed_write_stops_the_recording_and_it_resumes(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    def changed(kind: str, detail: Mapping[str, Any]) -> None:
        events.append((kind, dict(detail)))

    guard = GuardedRecorder(
        lambda: FailingAt(tmp_path, segment_seconds=600),
        dir=tmp_path,
        on_change=changed,
        retry_s=2.0,
        min_free_bytes=0,
    )
    enc = Encoder(FMT)
    await guard.open(enc.headers)
    states = []
    for frame in frames(FMT, 12):
        await guard.write_batch(enc.encode(frame))
        states.append(guard.recording)
    await guard.write_batch(enc.flush())
    await guard.aclose()
    assert [k for k, _ in events] == ["recording_stopped", "recording_resumed"]
    stopped, resumed = events[0][1], events[1][1]
    assert stopped["errno"] == "ENOSPC" and stopped["reason"] == "No space left on device"
    assert abs(stopped["t"] - 3.0) < 0.05  # the frame at 3 s
    assert abs(resumed["t"] - stopped["t"] - 2.0) < 0.05  # retried 2 s of media time later
    assert states.count(False) == 2 * FMT.fps  # off from 3.0 s to 5.0 s, on every other frame
    first, second = tmp_path / "segment-00001.mp4", tmp_path / "segment-00002.mp4"
    assert abs(float(ffprobe(first)["format"]["duration"]) - 3.0) < 0.1
    info = ffprobe(second)  # begins on the next keyframe, at 6 s: 6 s to the end
    assert stream_of(info, "video")["codec_name"] == "h264"
    assert abs(float(info["format"]["duration"]) - 6.0) < 0.1
