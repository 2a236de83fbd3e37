"""Push the programme to an RTMP or RTMPS ingest as FLV, surviving a slow or dead destination.

The push runs in its own thread behind a bounded queue: ``write`` only appends, so a stalled
socket never holds up the programme or the other sinks. When the queue is full the oldest
GOPs go, and after a drop or a reconnect the push restarts at a keyframe. Timestamps are the
programme's media clock, unchanged across reconnects. The stream key never leaves this module
unredacted: logs, errors and ``status()`` all use ``redact_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import av
from av.container import OutputContainer

from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.output._mux import add_streams, to_av_packet
from avatarcast.output.base import StreamHeaders

__all__ = ["RtmpSink", "State", "redact_url"]

log = logging.getLogger(__name__)

State = Literal["idle", "connecting", "connected", "retrying", "failed", "closed"]
_SCHEMES = ("rtmp", "rtmps")


def redact_url(url: str) -> str:
    """``rtmp://host/app/****``: the stream key, query and any credentials hidden."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    segments = [s for s in parts.path.split("/") if s]
    path = "/".join([*segments[:-1], "****"]) if segments else ""
    return f"{parts.scheme}://{host}{port}/{path}" if path else f"{parts.scheme}://{host}{port}"


def _validate(url: str) -> None:
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise ConfigError(f"malformed RTMP URL {shown}: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigError(f"RTMP URL {shown} must start with rtmp:// or rtmps://")
    if not parts.hostname:
        raise ConfigError(f"RTMP URL {shown} has no host")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        raise ConfigError(f"RTMP URL {shown} needs an application and a stream key")


class RtmpSink:
    """A Sink that pushes FLV to ``url`` from a worker thread, reconnecting with backoff.

    ``max_queue_seconds`` of media may wait for the destination; beyond that the oldest GOPs
    are dropped. Retries go on until ``aclose`` unless ``max_retries`` is set, after which the
    state is ``failed``. ``metadata`` goes into onMetaData.
    """

    def __init__(
        self,
        url: str,
        *,
        metadata: Mapping[str, str] | None = None,
        backoff_start: float = 1.0,
        backoff_cap: float = 10.0,
        jitter: float = 0.2,
        max_queue_seconds: float = 6.0,
        max_retries: int | None = None,
        close_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        _validate(url)
        if backoff_start <= 0 or backoff_cap < backoff_start or not 0 <= jitter < 1:
            raise ConfigError(
                f"bad backoff for {redact_url(url)}: start={backoff_start} "
                f"cap={backoff_cap} jitter={jitter}"
            )
        self._url = url
        self.url = redact_url(url)
        self.name = name or f"rtmp:{self.url}"
        self.metadata = dict(metadata or {})
        self._backoff = (backoff_start, backoff_cap, jitter)
        self._max_queue = max_queue_seconds
        self._max_retries = max_retries
        self._close_timeout = close_timeout
        self._timeout = connect_timeout
        self._cond = threading.Condition()
        self._queue: deque[EncodedPacket] = deque()
        self._stop = False
        self._resync = False  # packets were dropped: restart at the next keyframe
        self._thread: threading.Thread | None = None
        self._headers: StreamHeaders | None = None
        self._state: State = "idle"
        self._bytes = 0
        self._packets = 0
        self._dropped = 0
        self._connects = 0
        self._failures = 0
        self._last_error: str | None = None

    # --- the Sink interface, on the event loop --------------------------------------------------

    async def open(self, headers: StreamHeaders) -> None:
        if self._thread is not None:
            raise OutputError(f"{self.name} is already open")
        self._headers = headers
        self._thread = threading.Thread(
            target=self._run, name=f"avatarcast-rtmp-{self.url}", daemon=True
        )
        self._thread.start()

    async def write(self, packet: EncodedPacket) -> None:
        """Queue ``packet``; never waits for the network."""
        with self._cond:
            if self._stop:
                return
            self._queue.append(packet)
            self._trim()
            self._cond.notify()

    async def aclose(self) -> None:
        """Send what is queued (up to ``close_timeout`` seconds), then disconnect."""
        timeout = self._close_timeout
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                log.warning("%s: push thread still blocked after %.1f s", self.url, timeout)

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "name": self.name,
                "url": self.url,
                "state": self._state,
                "bytes_sent": self._bytes,
                "packets_sent": self._packets,
                "dropped_packets": self._dropped,
                "queued_packets": len(self._queue),
                "reconnects": max(self._connects - 1, 0),
                "last_error": self._last_error,
            }

    # --- the push thread ----------------------------------------------------------------------

    def _run(self) -> None:
        start, cap, jitter = self._backoff
        delay = start
        while not self._stop_requested():
            self._set_state("connecting")
            try:
                self._push()
                break  # stopped cleanly
            except (av.FFmpegError, OSError, OutputError) as exc:
                error = self._scrub(f"{type(exc).__name__}: {exc}")
                with self._cond:
                    self._failures += 1
                    self._last_error = error
                log.warning("%s: %s", self.url, error)
            if self._stop_requested():
                break
            if self._max_retries is not None and self._failures > self._max_retries:
                self._set_state("failed")
                log.error("%s: giving up after %d failures", self.url, self._failures)
                return
            self._set_state("retrying")
            wait = delay * (1 + random.uniform(-jitter, jitter))
            log.info("%s: reconnecting in %.1f s", self.url, wait)
            with self._cond:
                self._cond.wait_for(lambda: self._stop, timeout=wait)
            delay = min(delay * 2, cap)
        self._set_state("closed")

    def _push(self) -> None:
        """One connection: connect, start at a keyframe, send until stopped or broken."""
        assert self._headers is not None
        container = self._connect(self._headers)
        streams = {s.type: s for s in container.streams}
        self._connects += 1
        self._set_state("connected")
        log.info("%s: connected", self.url)
        sent_keyframe = False
        clean = False
        try:
            while True:
                packet, resync = self._next(timeout=1.0)
                if packet is None:
                    if self._stopping():
                        clean = True
                        return
                    continue
                if resync:
                    sent_keyframe = False
                if not sent_keyframe:
                    if not (packet.kind == "video" and packet.keyframe):
                        continue
                    sent_keyframe = True
                container.mux(to_av_packet(packet, streams[packet.kind]))
                with self._cond:
                    self._bytes += len(packet.data)
                    self._packets += 1
        finally:
            if clean:
                container.close()
            else:
                with contextlib.suppress(Exception):
                    container.close()

    def _connect(self, headers: StreamHeaders) -> OutputContainer:
        # PyAV opens the output (TCP, TLS, RTMP handshake) without releasing the GIL, so a
        # destination that never answers would freeze every thread. A plain TCP connect
        # with a timeout first catches the usual cases (refused, unreachable) off the GIL.
        parts = urlsplit(self._url)
        port = parts.port or (443 if parts.scheme == "rtmps" else 1935)
        with socket.create_connection((parts.hostname or "", port), timeout=self._timeout):
            pass
        container = av.open(self._url, "w", format="flv")
        try:
            container.metadata.update({**headers.format.metadata, **self.metadata})
            add_streams(container, headers)
            container.start_encoding()  # connects and sends the header and onMetaData
        except BaseException:
            with contextlib.suppress(Exception):
                container.close()
            raise
        return container

    def _next(self, timeout: float) -> tuple[EncodedPacket | None, bool]:
        with self._cond:
            if not self._queue and not self._stop:
                self._cond.wait(timeout)
            resync, self._resync = self._resync, False
            return (self._queue.popleft() if self._queue else None), resync

    def _trim(self) -> None:
        """Drop whole GOPs from the head while the queue spans more than the limit."""
        q = self._queue
        while len(q) > 1 and (q[-1].dts * q[-1].time_base - q[0].dts * q[0].time_base) > (
            self._max_queue
        ):
            q.popleft()
            self._dropped += 1
            self._resync = True
            while q and not (q[0].kind == "video" and q[0].keyframe):
                q.popleft()
                self._dropped += 1

    def _stopping(self) -> bool:
        with self._cond:
            return self._stop and not self._queue

    def _stop_requested(self) -> bool:
        with self._cond:
            return self._stop

    def _set_state(self, state: State) -> None:
        with self._cond:
            self._state = state

    def _scrub(self, text: str) -> str:
        text = text.replace(self._url, self.url)
        key = self._url.rstrip("/").rsplit("/", 1)[-1]
        return text.replace(key, "****") if key else text

    def __repr__(self) -> str:
        return f"RtmpSink({self.url!r}, state={self._state!r})"
