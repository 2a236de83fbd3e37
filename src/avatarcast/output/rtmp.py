"""Push the programme to an RTMP or RTMPS ingest as FLV, surviving a slow or dead destination.

The push runs in a child process (see ``_rtmp_push`` for why not a thread) fed by a thread
behind a bounded queue: ``write`` only appends, so a stalled socket never holds up the
programme or the other sinks. When the queue is full the oldest GOPs go, and after a drop or
a reconnect the push restarts at a keyframe. Timestamps are the programme's media clock,
unchanged across reconnects. The stream key never leaves this module unredacted: logs,
errors and ``status()`` all use ``redact_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any, Literal
from urllib.parse import urlsplit

from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.netpolicy import NetPolicy
from avatarcast.output._child import ChildProcess, spawn_child, stop_child
from avatarcast.output._forked_child import ChildForker
from avatarcast.output._rtmp_push import (
    MAX_CONNECTION_S,
    MSG_RESYNC,
    MSG_STOP,
    PushConfig,
    pack_packets,
    trim_gops,
)
from avatarcast.output.base import StreamHeaders
from avatarcast.threads import in_background, start_named_thread

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
    """A Sink that pushes FLV to ``url`` from a child process, reconnecting with backoff.

    ``max_queue_seconds`` of media may wait for the destination; beyond that the oldest GOPs
    are dropped. Retries go on until ``aclose`` unless ``max_retries`` is set, after which the
    state is ``failed``. ``metadata`` goes into onMetaData. ``policy`` says which addresses
    the host may resolve to, checked at every connect (default: any); ``ca_file`` adds trusted
    certificates for rtmps to the system CA bundle. ``children``: the worker's link to its
    zygote, which then forks the push process (see ``_forked_child``); None: started cold.
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
        policy: NetPolicy | None = None,
        ca_file: str | None = None,
        max_connection_s: float = MAX_CONNECTION_S,
        children: ChildForker | None = None,
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
        self._settings = (backoff_start, backoff_cap, jitter, max_retries, connect_timeout)
        self._max_queue = max_queue_seconds
        self._close_timeout = close_timeout
        self._max_connection_s = max_connection_s
        # the operator's own command line may push anywhere; the API passes its policy
        self._policy = policy or NetPolicy(allow_private=True)
        self._ca_file = ca_file
        self._children = children
        self._cond = threading.Condition()
        self._queue: deque[EncodedPacket] = deque()
        self._stop = False
        self._resync = False  # packets were dropped here: the child restarts at a keyframe
        self._dropped = 0
        self._remote: dict[str, Any] = {"state": "idle"}
        self._process: ChildProcess | None = None
        self._threads: list[threading.Thread] = []
        self._pipes: tuple[int, int] | None = None
        self._headers: StreamHeaders | None = None

    # --- the Sink interface, on the event loop --------------------------------------------------

    async def prestart(self) -> None:
        """Start the push process now, so its start-up overlaps with building the programme."""
        if self._process is not None:
            return
        # Started from a low-priority thread, it inherits that priority: the push runs on a
        # 6 s queue, not on the frame clock, and its start-up must not make frames of other
        # streams late.
        self._process, in_w, st_r = await spawn_child(
            "avatarcast.output._rtmp_push", run=in_background, forker=self._children
        )
        self._pipes = (in_w, st_r)

    async def open(self, headers: StreamHeaders) -> None:
        if self._threads:
            raise OutputError(f"{self.name} is already open")
        start, cap, jitter, retries, timeout = self._settings
        config = PushConfig(
            url=self._url,
            redacted=self.url,
            headers=headers,
            metadata=self.metadata,
            backoff_start=start,
            backoff_cap=cap,
            jitter=jitter,
            max_retries=retries,
            max_queue_seconds=self._max_queue,
            connect_timeout=timeout,
            policy=self._policy,
            ca_file=self._ca_file,
            max_connection_s=self._max_connection_s,
        )
        self._headers = headers
        await self.prestart()
        assert self._pipes is not None
        in_w, st_r = self._pipes
        inbox, status = Connection(in_w, readable=False), Connection(st_r, writable=False)
        inbox.send(config)  # the URL goes through the pipe, never onto a command line
        self._remote["state"] = "connecting"
        self._threads.append(start_named_thread("rtmp-feed", self._forward, inbox))
        self._threads.append(start_named_thread("rtmp-status", self._listen, status))

    async def write(self, packet: EncodedPacket) -> None:
        """Queue ``packet``; never waits for the network."""
        await self.write_batch((packet,))

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        """Queue one frame's packets with one wake-up of the feeding thread."""
        with self._cond:
            if self._stop:
                return
            self._queue.extend(packets)
            dropped = trim_gops(self._queue, self._max_queue)
            if dropped:
                self._dropped += dropped
                self._resync = True
            self._cond.notify_all()

    async def aclose(self) -> None:
        """Send what is queued (up to ``close_timeout`` seconds), then stop the push."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._pipes is not None and not self._threads:
            for fd in self._pipes:  # started early, never opened: EOF ends the push process
                os.close(fd)
            self._pipes = None
        if self._process is not None:
            await asyncio.to_thread(self._stop_process)

    async def restart(self) -> None:
        """A fresh push process (a monitor's remedy for a destination that is down or stuck):
        the old one is stopped, the queue waits for the new one, which starts at a keyframe."""
        if self._headers is None or self._process is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        await asyncio.to_thread(self._stop_process)
        with self._cond:
            self._stop = False
            self._resync = True
        self._threads, self._process, self._pipes = [], None, None
        await self.open(self._headers)

    def status(self) -> dict[str, Any]:
        with self._cond:
            remote = self._remote
            return {
                "name": self.name,
                "url": self.url,
                "state": remote["state"],
                "bytes_sent": remote.get("bytes_sent", 0),
                "packets_sent": remote.get("packets_sent", 0),
                "dropped_packets": self._dropped + remote.get("dropped_packets", 0),
                "queued_packets": len(self._queue),
                "reconnects": max(remote.get("connects", 0) - 1, 0),
                "last_error": remote.get("last_error"),
            }

    # --- threads --------------------------------------------------------------------------------

    def _forward(self, conn: Connection) -> None:
        """Feed the child; blocks on the pipe while the child is stuck, so ``write`` drops."""
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._stop)
                    if not self._queue:
                        break
                    batch = list(self._queue)
                    self._queue.clear()
                    resync, self._resync = self._resync, False
                if resync:
                    conn.send_bytes(MSG_RESYNC)
                conn.send_bytes(pack_packets(batch))
            conn.send_bytes(MSG_STOP)
        except (OSError, ValueError):
            pass  # the child is gone; _listen reports it
        finally:
            conn.close()

    def _listen(self, conn: Connection) -> None:
        while True:
            try:
                msg: dict[str, Any] = conn.recv()
            except (EOFError, OSError):
                break
            event = msg.pop("log", None)
            with self._cond:
                before = self._remote.get("state")
                self._remote = msg
            if event is not None:
                level, text = event
                log.log(level, "%s: %s", self.url, text)
            elif msg["state"] != before:
                log.debug("%s: %s", self.url, msg["state"])
        conn.close()
        with self._cond:
            if self._remote.get("state") not in ("closed", "failed"):
                code = None
                if self._process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        code = self._process.wait(1)
                self._remote = {**self._remote, "state": "failed"}
                self._remote["last_error"] = f"push process ended (exit code {code})"
                log.error("%s: push process ended (exit code %s)", self.url, code)

    def _stop_process(self) -> None:
        proc = self._process
        assert proc is not None
        stop_child(proc, self._threads, timeout=self._close_timeout, what=f"{self.url}: push")
        with self._cond:
            if self._remote.get("state") != "failed" or proc.returncode == 0:
                self._remote = {**self._remote, "state": "closed"}

    def __repr__(self) -> str:
        return f"RtmpSink({self.url!r}, state={self._remote['state']!r})"
