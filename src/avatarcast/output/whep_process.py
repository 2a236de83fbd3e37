"""WHEP viewers served from a child process, so viewers cannot make the programme late.

``WhepProcess`` is the Sink the live pipeline sees: ``write`` and ``push_pcm`` only append to
a bounded queue that a thread feeds into the child's pipe (see ``_whep_serve``), which runs
the WHEP HTTP endpoint and a ``WhepSink`` on its own event loop. If the child falls behind,
the queue is emptied and video resumes at the next keyframe; the programme never waits.

While nobody watches (the child reports its viewer count), nothing but the stream headers
goes to the child: pickling, piping and unpickling every frame for no viewer cost ~0.02 CPU s
per media second per stream. A viewer's offer turns the feed on before its answer is made, so
the next keyframe (every 2 s) reaches it as it would have anyway.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import EncodedPacket
from avatarcast.output._child import ChildProcess, spawn_child, stop_child
from avatarcast.output._forked_child import ChildForker
from avatarcast.output._whep_serve import WhepConfig
from avatarcast.output.base import StreamHeaders
from avatarcast.output.ice import IceServer
from avatarcast.threads import start_named_thread

__all__ = ["WhepProcess"]

log = logging.getLogger(__name__)


class WhepProcess:
    """A Sink that serves WHEP viewers from a child process at ``http://HOST:PORT/whep``.

    ``start`` launches the child and returns the URL once it listens (``port=0`` picks a
    free one); a busy port is an ``OutputError`` from ``start``. ``max_queue`` bounds the
    messages (video packets and PCM chunks) waiting for the child. ``children``: the worker's
    link to its zygote, which then forks the child (see ``_forked_child``); None: cold.
    """

    name = "whep"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8889,
        path: str = "/whep",
        token: str | None = None,
        ice_servers: Sequence[IceServer] = (),
        max_viewers: int = 100,
        queue_seconds: float = 2.0,
        max_queue: int = 200,
        start_timeout: float = 60.0,
        close_timeout: float = 5.0,
        children: ChildForker | None = None,
    ) -> None:
        if max_queue < 1:
            raise ConfigError(f"max_queue must be >= 1, got {max_queue}")
        self.ice_servers = tuple(ice_servers)
        self._config = WhepConfig(
            host=host,
            port=port,
            path=path,
            token=token,
            ice_servers=self.ice_servers,
            max_viewers=max_viewers,
            queue_seconds=queue_seconds,
        )
        self._max_queue = max_queue
        self._children = children
        self._start_timeout = start_timeout
        self._close_timeout = close_timeout
        self._cond = threading.Condition()
        self._queue: deque[tuple[Any, ...]] = deque()
        self._awaiting_key = False
        self._stop = False
        self._watched = False
        self.dropped = 0
        #: media messages handed to the child's pipe (none while nobody watches)
        self.forwarded = 0
        self.url: str | None = None
        self._process: ChildProcess | None = None
        self._threads: list[threading.Thread] = []

    async def start(self) -> str:
        """Launch the child and wait until its WHEP endpoint listens; returns its base URL."""
        if self._process is not None:
            raise OutputError("the WHEP process is already started")
        self._process, in_w, st_r = await spawn_child(
            "avatarcast.output._whep_serve",
            run=asyncio.to_thread,
            forker=self._children,
            stdout=subprocess.DEVNULL,  # not ours to hold: see _whep_serve.main
            stderr=subprocess.DEVNULL,
        )
        inbox, status = Connection(in_w, readable=False), Connection(st_r, writable=False)
        try:
            inbox.send(self._config)  # the token goes through the pipe, not the command line
            reply = await asyncio.to_thread(self._first_reply, status)
        except BaseException:
            inbox.close()
            status.close()
            await asyncio.to_thread(self._stop_process)
            raise
        self.url = reply
        self._threads.append(start_named_thread("whep-feed", self._forward, inbox))
        self._threads.append(start_named_thread("whep-status", self._listen, status))
        return reply

    @property
    def watched(self) -> bool:
        """Whether the child has a viewer (or one joining), so media goes to it."""
        return self._watched

    # --- the Sink interface, on the event loop --------------------------------------------------

    async def open(self, headers: StreamHeaders) -> None:
        with self._cond:
            self._queue.append(("open", headers))
            self._cond.notify_all()

    async def write(self, packet: EncodedPacket) -> None:
        """Queue a video packet (WebRTC has no AAC); never waits for the child."""
        if packet.kind != "video" or not self._watched:
            return
        with self._cond:
            if self._awaiting_key and not packet.keyframe:
                self.dropped += 1
                return
            self._awaiting_key = False
            self._offer(("video", packet), video=True)

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        for packet in packets:
            await self.write(packet)

    def push_pcm(self, pcm: npt.NDArray[np.int16], *, pts: int) -> None:
        """Queue programme audio (mono int16, 48 kHz), encoded to Opus in the child."""
        if not self._watched:
            return
        with self._cond:
            self._offer(("pcm", np.array(pcm, np.int16).ravel(), pts), video=False)

    async def aclose(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._process is not None:
            await asyncio.to_thread(self._stop_process)

    # --- threads --------------------------------------------------------------------------------

    def _offer(self, msg: tuple[Any, ...], *, video: bool) -> None:
        """Append under the lock; a full queue loses its media and video waits for a keyframe."""
        if self._stop:
            return
        if len(self._queue) >= self._max_queue:
            kept = [m for m in self._queue if m[0] == "open"]
            self.dropped += len(self._queue) - len(kept) + 1
            self._queue = deque(kept)
            self._awaiting_key = True
            if video and not msg[1].keyframe:
                return
            self._awaiting_key = not video
        self._queue.append(msg)
        self._cond.notify_all()

    def _first_reply(self, status: Connection) -> str:
        if not status.poll(self._start_timeout):
            raise OutputError(f"the WHEP process did not start in {self._start_timeout:.0f} s")
        try:
            reply: dict[str, Any] = status.recv()
        except EOFError:
            raise OutputError("the WHEP process ended before it listened") from None
        if "error" in reply:
            raise OutputError(reply["error"], retryable=bool(reply.get("retryable")))
        return str(reply["url"])

    def _forward(self, conn: Connection) -> None:
        """Feed the child; blocks on the pipe while the child is busy, so ``_offer`` drops."""
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._stop)
                    if not self._queue:
                        break
                    msg = self._queue.popleft()
                conn.send(msg)
                self.forwarded += msg[0] != "open"
            conn.send(("stop",))
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
            if "viewers" in msg:
                self._set_watched(msg["viewers"] > 0)
            elif "log" in msg:
                level, name, text = msg["log"]
                logging.getLogger(name).log(level, "%s", text)
            elif "error" in msg:
                log.error("%s", msg["error"])
        conn.close()
        with self._cond:
            if not self._stop:
                log.error("the WHEP process ended; viewers are gone")

    def _set_watched(self, watched: bool) -> None:
        """Feed the child while it has viewers (each starts at a keyframe there); else not."""
        with self._cond:
            if not watched:
                self._queue = deque(m for m in self._queue if m[0] == "open")
            self._watched = watched

    def _stop_process(self) -> None:
        assert self._process is not None
        stop_child(
            self._process, self._threads, timeout=self._close_timeout, what="the WHEP process"
        )
