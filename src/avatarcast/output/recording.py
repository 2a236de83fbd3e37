"""A 24/7 recording as a directory of MP4 segments with an index.

A new segment starts at the first keyframe once ``segment_seconds`` have passed. Segments are
fragmented MP4 (a fragment at each keyframe and at least every second, empty moov), so if the
process dies the closed segments are whole and the current one is readable up to its last
fragment, about a second before the end. ``index.json``
lists the closed segments and is replaced atomically (temp file + rename) after each one.
``on_segment_closed`` is then called with the segment's path in the recorder's worker thread
(C2PA signing hooks in here); an exception from it is logged and the recording goes on.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.stream import Stream

from avatarcast.errors import OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.output._mux import SerialWorker, add_streams, to_av_packet
from avatarcast.output.base import StreamHeaders

__all__ = ["SegmentInfo", "SegmentedRecorder"]

INDEX_NAME = "index.json"
log = logging.getLogger(__name__)


@dataclass(slots=True)
class SegmentInfo:
    file: str
    start: float  # programme time of the first keyframe, seconds
    duration: float
    frames: int


@dataclass(slots=True)
class _Segment:
    info: SegmentInfo
    container: OutputContainer
    streams: dict[str, Stream]
    start: Fraction
    end: Fraction


class SegmentedRecorder:
    """Sink that records the programme into ``dir/segment-NNNNN.mp4`` files plus ``index.json``.

    Timestamps in each file start at 0; ``start`` in the index gives the programme time.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        segment_seconds: float = 600,
        metadata: Mapping[str, str] | None = None,
        name: str = "recording",
        on_segment_closed: Callable[[Path], None] | None = None,
        batch_frames: int = 5,
    ) -> None:
        if segment_seconds <= 0:
            raise OutputError(f"segment_seconds must be > 0, got {segment_seconds}")
        if batch_frames < 1:
            raise OutputError(f"batch_frames must be >= 1, got {batch_frames}")
        self.dir = Path(dir)
        self.name = name
        self.segment_seconds = Fraction(segment_seconds)
        self.metadata = dict(metadata or {})
        self.on_segment_closed = on_segment_closed
        self.segments: list[SegmentInfo] = []
        self._worker = SerialWorker("recorder")
        self._headers: StreamHeaders | None = None
        self._current: _Segment | None = None
        self._early_audio: list[EncodedPacket] = []
        self._closed = False
        self._batch_frames = batch_frames
        self._batch: list[EncodedPacket] = []
        self._batched = 0

    async def open(self, headers: StreamHeaders) -> None:
        self._headers = headers
        await self._worker.call(self._prepare_dir)

    async def write(self, packet: EncodedPacket) -> None:
        await self.write_batch((packet,))

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        """Mux ``batch_frames`` frames' packets in one job of the worker thread.

        A job per frame woke the worker and made a future 25 times a second; the file is
        written a fragment (a second) at a time anyway, so 0.2 s more in memory costs nothing
        that a crash could show.
        """
        if self._headers is None or self._closed:
            raise OutputError(f"{self.name}: write before open or after close")
        self._batch.extend(packets)
        self._batched += 1
        if self._batched >= self._batch_frames:
            await self._submit_batch()

    async def _submit_batch(self) -> None:
        batch, self._batch, self._batched = tuple(self._batch), [], 0
        if not batch:
            return
        try:
            await self._worker.submit(lambda: self._write_all(batch))
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(f"recording in {self.dir} failed: {exc}") from exc

    async def restart(self) -> None:
        """Close the segment being written (a monitor's remedy for a stalled recording); the
        next keyframe opens a new one, so the recording goes on in a new segment."""
        if self._closed or self._headers is None:
            return
        try:
            await self._submit_batch()
            await self._worker.call(self._close_segment)
        except Exception as exc:
            raise OutputError(f"recording in {self.dir}: restart failed: {exc}") from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._submit_batch()
            await self._worker.drain()
            await self._worker.call(self._close_segment)
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(f"recording in {self.dir} failed: {exc}") from exc
        finally:
            self._worker.shutdown()

    # --- in the worker thread -----------------------------------------------------------------

    def _prepare_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, probe = tempfile.mkstemp(prefix=".probe.", dir=self.dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"cannot record into {self.dir}: {exc.strerror or exc}") from exc
        self._resume_index()

    def _resume_index(self) -> None:
        """Keep an earlier recording in the same folder: number new segments after its last."""
        index = self.dir / INDEX_NAME
        if not index.exists():
            return
        try:
            body = json.loads(index.read_text(encoding="utf-8"))
            earlier = [SegmentInfo(**s) for s in body.get("segments", [])]
        except (OSError, ValueError, TypeError) as exc:
            raise OutputError(f"cannot continue the recording in {self.dir}: {exc}") from exc
        self.segments = earlier + self.segments

    def _write_all(self, packets: tuple[EncodedPacket, ...]) -> None:
        for packet in packets:
            self._write(packet)

    def _write(self, packet: EncodedPacket) -> None:
        t = packet.dts * packet.time_base
        seg = self._current
        if packet.kind == "video" and packet.keyframe:
            if seg is None or t - seg.start >= self.segment_seconds:
                self._close_segment()
                seg = self._current = self._open_segment(t)
        if seg is None:
            if packet.kind == "audio":
                self._early_audio.append(packet)  # the AAC priming packet precedes frame 0
            return
        seg.container.mux(to_av_packet(packet, seg.streams[packet.kind], offset=seg.start))
        seg.end = max(seg.end, (packet.dts + packet.duration) * packet.time_base)
        if packet.kind == "video":
            seg.info.frames += 1

    def _open_segment(self, start: Fraction) -> _Segment:
        assert self._headers is not None
        n = len(self.segments) + 1
        path = self.dir / f"segment-{n:05d}.mp4"
        while path.exists():  # a segment a killed run left behind, not in the index
            n += 1
            path = self.dir / f"segment-{n:05d}.mp4"
        try:
            options = {"movflags": _FRAG_FLAGS, "frag_duration": "1000000", "flush_packets": "1"}
            container = av.open(str(path), "w", format="mp4", options=options)
            container.metadata.update({**self._headers.format.metadata, **self.metadata})
            video, audio = add_streams(container, self._headers)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot open segment {path}: {exc}") from exc
        info = SegmentInfo(file=path.name, start=float(start), duration=0.0, frames=0)
        seg = _Segment(info, container, {"video": video, "audio": audio}, start, start)
        early, self._early_audio = self._early_audio, []
        for p in early:
            container.mux(to_av_packet(p, audio, offset=start))
        return seg

    def _close_segment(self) -> None:
        seg, self._current = self._current, None
        if seg is None:
            return
        try:
            seg.container.close()
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot finish segment {seg.info.file}: {exc}") from exc
        seg.info.duration = float(seg.end - seg.start)
        self.segments.append(seg.info)
        self._write_index()
        if self.on_segment_closed is not None:
            try:
                self.on_segment_closed(self.dir / seg.info.file)
            except Exception:
                log.exception("%s: on_segment_closed failed for %s", self.name, seg.info.file)

    def _write_index(self) -> None:
        body = {
            "segment_seconds": float(self.segment_seconds),
            "segments": [asdict(s) for s in self.segments],
        }
        fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".json", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(body, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / INDEX_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_FRAG_FLAGS = "+frag_keyframe+empty_moov+default_base_moof+use_metadata_tags"
