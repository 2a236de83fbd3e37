"""MP4 file output, and a null sink for benchmarks and tests.

The file appears under its name only once it is complete: packets are muxed into a hidden
temporary file next to the target, which is renamed on a successful close. A failure or a
cancellation removes it, so no half-written programme is ever left where a user looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import av
from av.container import OutputContainer
from av.stream import Stream

from avatarcast.errors import OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.output._mux import SerialWorker, add_streams, to_av_packet
from avatarcast.output.base import StreamHeaders

__all__ = ["Mp4FileSink", "NullSink"]


class Mp4FileSink:
    """Mux the shared H.264/AAC packets into ``path``; the file exists only when complete.

    ``aclose`` commits (finish the file, rename it into place) unless the sink failed, a write
    was cancelled, or the task calling ``aclose`` is itself being cancelled; then, and on
    ``abort``, the temporary file is removed. ``async with`` commits on a clean exit only.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        faststart: bool = True,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or f"mp4:{self.path.name}"
        self.metadata = dict(metadata or {})
        self._faststart = faststart
        self._worker = SerialWorker("mp4-file")
        self._tmp: Path | None = None
        self._container: OutputContainer | None = None
        self._streams: dict[str, Stream] = {}
        self._aborted = False
        self._closed = False
        self.packets = 0

    async def open(self, headers: StreamHeaders) -> None:
        meta = {**headers.format.metadata, **self.metadata}
        await self._worker.call(lambda: self._open(headers, meta))

    async def write(self, packet: EncodedPacket) -> None:
        if self._container is None or self._closed:
            raise OutputError(f"{self.name}: write before open or after close")
        stream = self._streams[packet.kind]
        try:
            await self._worker.submit(
                lambda: self._container.mux(to_av_packet(packet, stream))  # type: ignore[union-attr]
            )
        except asyncio.CancelledError:
            self._aborted = True
            raise
        except Exception as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
        self.packets += 1

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        for packet in packets:
            await self.write(packet)

    async def aclose(self) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self._aborted = True
        await asyncio.shield(self._finish(commit=not self._aborted))

    async def abort(self) -> None:
        """Stop and remove the partial file."""
        self._aborted = True
        await asyncio.shield(self._finish(commit=False))

    async def __aenter__(self) -> Mp4FileSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            await self.abort()
        else:
            await self.aclose()

    def _open(self, headers: StreamHeaders, meta: dict[str, str]) -> None:
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
            )
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._tmp = Path(tmp)
        flags = "+use_metadata_tags" + ("+faststart" if self._faststart else "")
        try:
            container = av.open(tmp, "w", format="mp4", options={"movflags": flags})
            container.metadata.update(meta)
            video, audio = add_streams(container, headers)
        except (av.FFmpegError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot open {self.path} for muxing: {exc}") from exc
        self._container = container
        self._streams = {"video": video, "audio": audio}

    async def _finish(self, *, commit: bool) -> None:
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        try:
            await self._worker.drain()
        except Exception as exc:
            error = exc
        try:
            await self._worker.call(lambda: self._close(commit=commit and error is None))
        finally:
            self._worker.shutdown()
        if error is not None:
            raise OutputError(f"cannot write {self.path}: {error}") from error

    def _close(self, *, commit: bool) -> None:
        container, tmp = self._container, self._tmp
        self._container = None
        try:
            if container is not None:
                if commit:
                    container.close()
                else:
                    with contextlib.suppress(Exception):
                        container.close()
            if commit and tmp is not None:
                os.replace(tmp, self.path)
                tmp = None
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot finish {self.path}: {exc}") from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)


class NullSink:
    """Counts what it is given; for benchmarks and as a second sink in tests."""

    def __init__(self, *, name: str = "null") -> None:
        self.name = name
        self.headers: StreamHeaders | None = None
        self.packets = 0
        self.bytes = 0
        self.by_kind = {"video": 0, "audio": 0}
        self.closed = False

    async def open(self, headers: StreamHeaders) -> None:
        self.headers = headers

    async def write(self, packet: EncodedPacket) -> None:
        self.packets += 1
        self.bytes += len(packet.data)
        self.by_kind[packet.kind] += 1

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        for packet in packets:
            await self.write(packet)

    async def aclose(self) -> None:
        self.closed = True
