"""HLS (and Low-Latency HLS) into a folder any static server or CDN can serve, from the one encode.

One MPEG-TS muxer runs for the whole stream and writes into memory; its byte stream is cut in
front of the video packet that starts a segment or a part. The muxer only repackages (no codec
is opened for encoding: see ``_mux.add_streams``), so a segment costs a few microseconds a
packet. Segments start at the encoder's keyframes: the encoder makes one every 2 s exactly
(``Encoder(keyint_seconds=2)``, scene cuts off), and a segment ends at the first keyframe once
``segment_seconds`` have passed, so with the defaults every segment is 2.000 s. FFmpeg's TS
muxer writes PAT/PMT before each keyframe, and puts the key frame's SPS/PPS in band; a cut that
finds an audio packet the muxer held back in front of them moves the tables to the start, so
each file is decodable alone.

Every file is written under a temporary name and renamed into place, so a CDN never reads half
a file, and the playlist is replaced only after the files it names exist. A write that fails
(folder gone, read-only, full) is reported in :meth:`HlsSink.status` and kept in memory, up to
``backlog_seconds`` of media; the next cut writes the backlog first, so after a short outage the
playlist carries on with no gap in its media sequence. Past that bound the oldest segment is
dropped and listed as ``EXT-X-GAP``. The other sinks never wait on this folder: the muxing and
the writes run in this sink's own thread.

Each segment's ``EXT-X-PROGRAM-DATE-TIME`` is its place on the media clock: the wall time of
media time 0 (taken at the first frame) plus the segment's start, so dates and durations always
agree. A player's ``now - playingDate`` is then the latency from the media clock to the screen,
the programme's own lateness included when it runs late.

Old files are removed as media time passes: a segment ``keep_seconds`` after it left the
playlist (by default the playlist's length, as RFC 8216 asks), parts once their segment no longer
lists them. Names carry a run id, so a restarted stream never reuses a name a CDN may have cached
as immutable. ``aclose`` writes the last segment and ends the playlist with ``EXT-X-ENDLIST``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.stream import Stream

from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.output._mux import SerialWorker, add_streams
from avatarcast.output._ts import (
    PMT_PID,
    VIDEO_PID,
    TsBuffer,
    av_packet,
    frame_start,
    leading_psi,
    psi_first,
)
from avatarcast.output.base import StreamHeaders
from avatarcast.output.hls_playlist import PlaylistPart, PlaylistSegment, render_playlist

__all__ = ["PLAYLIST_NAME", "HlsOptions", "HlsSink", "HlsStatus"]

log = logging.getLogger(__name__)

PLAYLIST_NAME = "index.m3u8"


@dataclass(frozen=True, slots=True, kw_only=True)
class HlsOptions:
    segment_seconds: float = 2.0
    #: segments listed in the playlist
    window: int = 6
    #: Low-Latency HLS: partial segments of about ``part_seconds`` and blocking reloads
    low_latency: bool = False
    part_seconds: float = 0.4
    #: seconds of media a segment stays on disk after it left the playlist (None: the window's)
    keep_seconds: float | None = None
    #: seconds of media kept in memory while the folder cannot be written
    backlog_seconds: float = 60.0

    def check(self) -> None:
        if self.segment_seconds <= 0:
            raise ConfigError(f"HLS segment_seconds must be > 0, got {self.segment_seconds}")
        if self.window < 3:
            raise ConfigError(f"HLS window must be at least 3 segments, got {self.window}")
        if not 0 < self.part_seconds <= self.segment_seconds:
            raise ConfigError(
                f"HLS part_seconds must be within (0, {self.segment_seconds}], "
                f"got {self.part_seconds}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class HlsStatus:
    dir: str  # the folder written to
    state: str  # "ok", "failing" (the folder cannot be written), "closed"
    segments: int  # segments written
    bytes_written: int
    failures: int  # write failures so far
    recoveries: int  # times the folder became writable again after failures
    backlog: int  # segments waiting in memory to be written
    gaps: int  # segments dropped from a too long backlog
    last_error: str | None


@dataclass(slots=True)
class _Seg:
    entry: PlaylistSegment
    start: Fraction
    chunks: list[bytes] = field(default_factory=list)
    written: bool = False
    parts_ok: bool = True
    parts_removed: bool = False
    left_at: Fraction | None = None  # media time it left the playlist


class HlsSink:
    """Writes ``dir/index.m3u8`` and its segments (and parts) from the shared packets."""

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        options: HlsOptions | None = None,
        metadata: Mapping[str, str] | None = None,
        name: str = "hls",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or HlsOptions()
        self.options.check()
        self.dir = Path(dir)
        self.name = name
        self.metadata = dict(metadata or {})
        self._wall = wall
        self._run = f"{int(wall()):x}{secrets.token_hex(2)}"
        self._worker = SerialWorker("hls")
        self._headers: StreamHeaders | None = None
        self._buf = TsBuffer()
        self._container: OutputContainer | None = None
        self._streams: dict[str, Stream] = {}
        self._psi = b""
        self._epoch: float | None = None  # wall time of media time 0
        self._segs: deque[_Seg] = deque()  # listed, waiting to be written, or waiting to go
        self._cur: _Seg | None = None
        self._part_start = Fraction(0)
        self._part_frames = 0
        self._video_end_ticks = 0
        self._segment_s = Fraction(self.options.segment_seconds)
        # packets wait on the loop until a cut is due: one hand-off to the thread per part or
        # second instead of one per frame (the hand-offs were a third of the sink's CPU)
        self._pending: list[EncodedPacket] = []
        self._since_flush = 0
        self._flush_frames = 25
        self._backlog: deque[tuple[_Seg, bytes]] = deque()
        self._next_msn = 0
        self._target = max(1, round(self.options.segment_seconds + 0.499))
        self._frames_per_part = 1
        self._ended = False
        self._closed = False
        self._error: str | None = None
        self._failing = False
        self._counts = {"segments": 0, "bytes": 0, "failures": 0, "recoveries": 0, "gaps": 0}

    # --- Sink --------------------------------------------------------------------------------

    async def open(self, headers: StreamHeaders) -> None:
        self._headers = headers
        fps = headers.format.fps
        self._frames_per_part = max(1, round(self.options.part_seconds * fps))
        self._flush_frames = self._frames_per_part if self.options.low_latency else fps
        await self._worker.call(self._open)

    async def write(self, packet: EncodedPacket) -> None:
        await self.write_batch((packet,))

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        if self._container is None or self._closed:
            raise OutputError(f"{self.name}: write before open or after close")
        due = False
        for p in packets:
            if p.kind != "video":
                continue
            if self._epoch is None:
                self._epoch = self._wall() - float(p.dts * p.time_base)
            if p.keyframe or self._since_flush >= self._flush_frames:
                due, self._since_flush = True, 0
            self._since_flush += 1
        self._pending += packets
        if due:
            await self._submit()

    async def _submit(self) -> None:
        batch, self._pending = tuple(self._pending), []
        if not batch:
            return
        try:
            await self._worker.submit(lambda: self._mux_all(batch))
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(f"HLS in {self.dir} failed: {exc}") from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            await self._submit()
        finally:
            self._closed = True
        try:
            await self._worker.drain()
            await self._worker.call(self._finish)
        except OutputError:
            raise
        except Exception as exc:
            raise OutputError(f"HLS in {self.dir} failed: {exc}") from exc
        finally:
            self._worker.shutdown()

    def status(self) -> HlsStatus:
        c = self._counts
        return HlsStatus(
            dir=str(self.dir),
            state="closed" if self._ended else "failing" if self._failing else "ok",
            segments=c["segments"],
            bytes_written=c["bytes"],
            failures=c["failures"],
            recoveries=c["recoveries"],
            backlog=len(self._backlog),
            gaps=c["gaps"],
            last_error=self._error,
        )

    # --- in the worker thread ----------------------------------------------------------------

    def _open(self) -> None:
        assert self._headers is not None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for old in self.dir.iterdir():  # an earlier run's files: its playlist has ended
                if old.name == PLAYLIST_NAME or old.suffix in (".ts", ".tmp"):
                    old.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write HLS into {self.dir}: {exc.strerror or exc}") from exc
        options = {
            "flush_packets": "1",
            "pes_payload_size": "0",  # each audio frame its own PES: nothing held past a cut
            "mpegts_pmt_start_pid": str(PMT_PID),
            "mpegts_start_pid": str(VIDEO_PID),
        }
        try:
            container = av.open(self._buf, "w", format="mpegts", options=options)
            video, audio = add_streams(container, self._headers)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot open the HLS muxer: {exc}") from exc
        self._container = container
        self._streams = {"video": video, "audio": audio}

    def _mux_all(self, packets: tuple[EncodedPacket, ...]) -> None:
        assert self._container is not None
        for p in packets:
            mark = len(self._buf.data)
            self._container.mux(av_packet(p, self._streams[p.kind]))
            if not self._psi and self._buf.data:
                self._psi = leading_psi(bytes(self._buf.data))
            if p.kind == "video":
                self._after_video(p, mark)
                self._part_frames += 1
                self._video_end_ticks = p.dts + p.duration

    def _after_video(self, p: EncodedPacket, mark: int) -> None:
        """Cut in front of ``p`` if it starts a segment or a part.

        The muxer writes ``p`` together with the audio it held back until a later packet came
        (libavformat interleaves by time), so the cut is at ``p``'s own first TS packet (or the
        tables in front of it): the audio that starts before ``p`` stays in the part it belongs
        to, and audio and video of a part end together.
        """
        cur = self._cur
        if p.keyframe:
            t = p.dts * p.time_base
            if cur is None or t - cur.start >= self._segment_s:
                if cur is not None:
                    self._cut_segment(cur, t, frame_start(self._buf.data, mark))
                self._start_segment(t)
                return
        if self.options.low_latency and cur is not None:
            if self._part_frames >= self._frames_per_part:
                at = frame_start(self._buf.data, mark)
                self._cut_part(cur, p.dts * p.time_base, at, final=False)

    def _start_segment(self, t: Fraction) -> None:
        msn = self._next_msn
        self._next_msn += 1
        uri = f"{self._run}-{msn:06d}.ts"
        # on the media clock: consistent with the durations, so players never see a jump
        date = (self._epoch if self._epoch is not None else self._wall()) + float(t)
        entry = PlaylistSegment(msn=msn, uri=uri, duration=0.0, date=date)
        self._cur = _Seg(entry, t)
        self._part_start, self._part_frames = t, 0

    def _cut_part(self, seg: _Seg, t: Fraction, at: int | None, *, final: bool) -> None:
        data = self._buf.take(at)
        seg.chunks.append(data)
        index = len(seg.entry.parts)
        part = PlaylistPart(
            uri=f"{self._run}-{seg.entry.msn:06d}.{index}.ts",
            duration=float(t - self._part_start),
            independent=index == 0,
        )
        self._part_start, self._part_frames = t, 0
        seg.entry.parts.append(part)
        if not self._write_file(part.uri, psi_first(data, self._psi)):
            seg.parts_ok = False
        elif not final:  # a segment's last part is listed with the segment
            self._write_playlist()

    def _cut_segment(self, seg: _Seg, t: Fraction, at: int | None) -> None:
        if self.options.low_latency:
            self._cut_part(seg, t, at, final=True)
        else:
            seg.chunks.append(self._buf.take(at))
        seg.entry.duration = float(t - seg.start)
        self._target = max(self._target, round(seg.entry.duration + 0.499))
        body = psi_first(b"".join(seg.chunks), self._psi)
        seg.chunks = []
        self._cur = None
        self._segs.append(seg)
        self._backlog.append((seg, body))
        self._flush_backlog()
        self._retire(t)
        self._write_playlist()

    def _finish(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()  # the muxer's last bytes belong to the open segment
            except (av.FFmpegError, OSError) as exc:
                log.warning("%s: closing the muxer: %s", self.name, exc)
        if self._cur is not None:
            assert self._headers is not None
            end = self._video_end_ticks * self._headers.format.video_time_base
            self._cut_segment(self._cur, max(end, self._cur.start), None)
        self._ended = True
        self._flush_backlog()
        self._write_playlist()
        if self._backlog:
            raise OutputError(
                f"HLS in {self.dir}: {len(self._backlog)} files could not be written at the "
                f"end: {self._error}"
            )

    # --- files --------------------------------------------------------------------------------

    def _write_file(self, name: str, data: bytes) -> bool:
        tmp = self.dir / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.dir / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self._failed(f"cannot write {self.dir / name}: {exc.strerror or exc}")
            return False
        self._counts["bytes"] += len(data)
        if self._failing:
            self._failing = False
            self._counts["recoveries"] += 1
            log.warning("%s: %s is writable again", self.name, self.dir)
        return True

    def _failed(self, message: str) -> None:
        self._counts["failures"] += 1
        self._error = message
        if not self._failing:
            log.error("%s: %s; keeping segments in memory until it recovers", self.name, message)
        self._failing = True

    def _flush_backlog(self) -> None:
        while self._backlog:
            seg, body = self._backlog[0]
            if not self._write_file(seg.entry.uri, body):
                break
            self._backlog.popleft()
            seg.written = True
            self._counts["segments"] += 1
        held = sum(seg.entry.duration for seg, _ in self._backlog)
        while self._backlog and held > self.options.backlog_seconds:
            dropped, _ = self._backlog.popleft()  # the oldest: listed as a gap from now on
            held -= dropped.entry.duration
            dropped.entry.gap = True
            self._counts["gaps"] += 1

    def _listed(self) -> list[_Seg]:
        """The window: the newest segments that are written (or given up as gaps)."""
        ready: list[_Seg] = []
        for seg in self._segs:
            if seg.left_at is not None:
                continue
            if not (seg.written or seg.entry.gap):
                break
            ready.append(seg)
        return ready[-self.options.window :]

    def _write_playlist(self) -> None:
        listed = self._listed()
        if not listed and not self._ended:
            return
        ll = self.options.low_latency
        recent = {id(s) for s in listed[-2:]}
        entries: list[PlaylistSegment] = []
        for seg in listed:
            e = seg.entry
            keep_parts = ll and id(seg) in recent and seg.parts_ok and not e.gap
            entries.append(
                PlaylistSegment(
                    msn=e.msn,
                    uri=e.uri,
                    duration=e.duration,
                    date=e.date,
                    gap=e.gap,
                    parts=list(e.parts) if keep_parts else [],
                )
            )
        cur = self._cur
        open_parts = cur.entry.parts if ll and cur is not None and cur.parts_ok else []
        if cur is not None and listed and listed[-1].entry.msn != cur.entry.msn - 1:
            open_parts = []  # a segment is still missing: its parts would not follow on
        text = render_playlist(
            entries,
            target_duration=self._target,
            label=self.metadata,
            part_target=self._part_target() if ll else None,
            open_parts=open_parts,
            next_msn=cur.entry.msn if cur is not None else self._next_msn,
            ended=self._ended and not self._backlog,
        )
        self._write_file(PLAYLIST_NAME, text.encode())

    def _part_target(self) -> float:
        assert self._headers is not None
        return self._frames_per_part / self._headers.format.fps

    def _retire(self, now: Fraction) -> None:
        """Mark segments that left the window; delete files whose time on disk is over."""
        listed = {id(s) for s in self._listed()}
        keep = self.options.keep_seconds
        keep_s = Fraction(
            keep if keep is not None else self.options.segment_seconds * self.options.window
        )
        for seg in self._segs:
            if seg.left_at is None and id(seg) not in listed and (seg.written or seg.entry.gap):
                seg.left_at = now
                self._remove_parts(seg)
        while self._segs and self._segs[0].left_at is not None:
            seg = self._segs[0]
            assert seg.left_at is not None
            if now - seg.left_at < keep_s:
                break
            self._segs.popleft()
            with contextlib.suppress(OSError):
                (self.dir / seg.entry.uri).unlink(missing_ok=True)
        # parts are listed for the newest two segments; their files stay two segments longer
        for seg in list(self._segs)[:-4]:
            self._remove_parts(seg)

    def _remove_parts(self, seg: _Seg) -> None:
        if seg.parts_removed:
            return
        seg.parts_removed = True
        for part in seg.entry.parts:
            with contextlib.suppress(OSError):
                (self.dir / part.uri).unlink(missing_ok=True)
