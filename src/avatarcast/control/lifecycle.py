"""A graceful end for ``serve``: SIGTERM drains the streams, and systemd hears about it.

On SIGTERM (``Lifecycle.drain``): ``/readyz`` answers 503 ``draining`` at once, so a load
balancer stops sending; after ``lifecycle.drain_notice_s`` every stream is stopped the way
``stop`` does it (the frame loop ends, the encoder is flushed, each recording segment is
closed and ``index.json`` written), *without* touching what should be on air: the streams
and schedules in the database still say ``live``, so the next start restores them. Then the
server exits. The lifespan tells systemd ``READY=1`` when the server serves and pings its
watchdog from the event loop (``sdnotify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

import uvicorn

from avatarcast.control import sdnotify
from avatarcast.control.context import AppContext
from avatarcast.control.manager import StreamManager
from avatarcast.control.streaming import EXTRAS_KEY as STREAMS_KEY

__all__ = ["EXTRAS_KEY", "DrainingServer", "Lifecycle", "lifecycle_of", "lifespan"]

log = logging.getLogger(__name__)
EXTRAS_KEY = "lifecycle"


class Lifecycle:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.draining = False
        self._drained: asyncio.Task[None] | None = None

    def drain(self) -> asyncio.Task[None]:
        """Start draining (once; later calls get the same task)."""
        if self._drained is None:
            self.draining = True
            self._drained = asyncio.get_running_loop().create_task(self._drain(), name="drain")
        return self._drained

    async def _drain(self) -> None:
        self.ctx.metrics.draining.set(1)
        sdnotify.notify("STOPPING=1\nSTATUS=draining streams")
        manager: StreamManager | None = self.ctx.extras.get(STREAMS_KEY)
        running = len(manager.runner.running()) if manager is not None else 0
        log.warning("draining: %d streams stop, recordings are closed", running)
        await asyncio.sleep(self.ctx.settings.lifecycle.drain_notice_s)
        if manager is not None:
            await manager.runner.drain()
        log.warning("drained")


def lifecycle_of(ctx: AppContext) -> Lifecycle | None:
    found: Lifecycle | None = ctx.extras.get(EXTRAS_KEY)
    return found


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Last of the lifespans: when it runs, the streams are restored and the server serves."""
    lifecycle = Lifecycle(ctx)
    ctx.extras[EXTRAS_KEY] = lifecycle
    sdnotify.notify("READY=1\nSTATUS=serving")
    interval = sdnotify.watchdog_interval()
    pinger = None
    if interval is not None:
        pinger = asyncio.get_running_loop().create_task(_watchdog(interval), name="watchdog")
    try:
        yield
    finally:
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        sdnotify.notify("STOPPING=1")


async def _watchdog(interval: float) -> None:
    while True:
        sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that the first SIGTERM drains (:meth:`Lifecycle.drain`) while
    the server still answers (``/readyz`` 503), and exits when the streams have stopped.
    SIGINT, or SIGTERM again, ends at once as uvicorn does (streams are still stopped by the
    runner's shutdown)."""

    _loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.app
        ctx = getattr(getattr(app, "state", None), "ctx", None)
        lifecycle = lifecycle_of(ctx) if isinstance(ctx, AppContext) else None
        loop = self._loop
        if (
            sig == signal.SIGTERM
            and lifecycle is not None
            and not lifecycle.draining
            and not self.should_exit
            and loop is not None
        ):
            loop.call_soon_threadsafe(self._begin_drain, lifecycle)
            return
        super().handle_exit(sig, frame)

    def _begin_drain(self, lifecycle: Lifecycle) -> None:
        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("drain failed: %s", task.exception())
            self.should_exit = True

        lifecycle.drain().add_done_callback(done)
