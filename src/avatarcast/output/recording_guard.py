"""A recording that stops, not the stream, when its disk fails it.

A full disk (ENOSPC), a quota, a folder removed under it: :class:`SegmentedRecorder` raises,
and a sink that raises ends the frame loop, so the stream would crash, restart, hit the same
full disk and crash again, off air for good. :class:`GuardedRecorder` catches the failure,
closes what it can (the segment being written stays readable up to its last one-second
fragment), reports ``recording_stopped`` and lets the programme go on. Every
``retry_s`` of media time it looks at the free space; once ``min_free_bytes`` are free it
opens a new recorder in the same folder (segment numbers go on after the last) at the next
keyframe and reports ``recording_resumed``.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from avatarcast.errors import OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.output.base import StreamHeaders
from avatarcast.output.recording import SegmentedRecorder

__all__ = ["GuardedRecorder"]

log = logging.getLogger(__name__)
#: what the recording needs free before it starts again: a few minutes of 720p segments
MIN_FREE_BYTES = 32 * 1024 * 1024

OnChange = Callable[[str, Mapping[str, Any]], None]


class GuardedRecorder:
    name = "recording"

    def __init__(
        self,
        make: Callable[[], SegmentedRecorder],
        *,
        dir: Path,
        on_change: OnChange | None = None,
        retry_s: float = 5.0,
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self._make = make
        self.dir = dir
        self._on_change = on_change
        self._retry = Fraction(retry_s)
        self._min_free = min_free_bytes
        self._headers: StreamHeaders | None = None
        self._recorder: SegmentedRecorder | None = None
        self._retry_at: Fraction | None = None
        self._waiting_key = False
        self.stopped_reason: str | None = None

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    async def open(self, headers: StreamHeaders) -> None:
        self._headers = headers
        recorder = self._make()
        try:
            await recorder.open(headers)
        except OutputError as e:
            await self._stop(recorder, e, Fraction(0))
            return
        self._recorder = recorder

    async def write(self, packet: EncodedPacket) -> None:
        await self.write_batch((packet,))

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        if not packets:
            return
        now = packets[0].dts * packets[0].time_base
        if self._recorder is None:
            await self._maybe_resume(now)
            if self._recorder is None:
                return
        if self._waiting_key:  # a resumed recording starts on a keyframe, sound and picture
            if not any(p.kind == "video" and p.keyframe for p in packets):
                return
            self._waiting_key = False
        recorder = self._recorder
        try:
            await recorder.write_batch(packets)
        except OutputError as e:
            await self._stop(recorder, e, now)

    async def aclose(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            await recorder.aclose()

    async def _stop(self, recorder: SegmentedRecorder, error: Exception, now: Fraction) -> None:
        self._recorder = None
        self._retry_at = now + self._retry
        try:
            await recorder.aclose()
        except Exception as e:  # the disk that failed the write may fail the close too
            log.warning("recording: closing after a failure failed too: %s", e)
        code = _errno(error)
        reason = os.strerror(code) if code is not None else type(error.__cause__ or error).__name__
        self.stopped_reason = reason
        log.error("recording stopped (%s); the stream goes on: %s", reason, error)
        self._report(
            "recording_stopped",
            {
                "reason": reason,
                "errno": errno.errorcode.get(code, "") if code else "",
                "t": float(now),
            },
        )

    async def _maybe_resume(self, now: Fraction) -> None:
        if self._retry_at is None or now < self._retry_at or self._headers is None:
            return
        self._retry_at = now + self._retry
        free = _free_bytes(self.dir)
        if free is not None and free < self._min_free:
            return
        recorder = self._make()
        try:
            await recorder.open(self._headers)
        except OutputError as e:
            log.warning("recording: cannot start again yet: %s", e)
            return
        self._recorder, self._waiting_key, self.stopped_reason = recorder, True, None
        log.warning("recording resumed (%s bytes free)", free)
        self._report("recording_resumed", {"t": float(now), "free_bytes": free})

    def _report(self, kind: str, detail: Mapping[str, Any]) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(kind, detail)
        except Exception:
            log.exception("recording: reporting %s failed", kind)


def _errno(error: BaseException) -> int | None:
    seen: BaseException | None = error
    while seen is not None:
        code = getattr(seen, "errno", None)
        if isinstance(code, int):
            return code
        seen = seen.__cause__ or seen.__context__
    return None


def _free_bytes(folder: Path) -> int | None:
    path = folder
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
