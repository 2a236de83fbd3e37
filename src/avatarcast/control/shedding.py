"""Bounded admission for ``/v1`` requests: a server past its capacity says so at once.

Without a bound, every request a client sends is worked off, however late: clients that gave
up after their timeout leave their requests queued for the threadpool and the database, and
the server stays slow long after the load has gone. Here at most ``running`` API requests run
at a time, at most ``waiting`` more wait, each at most ``wait_s``; the others are answered
``503`` with ``Retry-After`` as a problem, before their body is read. Health, readiness and
metrics are never held back, nor are WebSockets (a chat socket lives for hours).

Stopping what is on air must work most of all when the server is overloaded: ``POST`` to a
stream's ``stop``, ``kill``, ``mute``, ``pause`` and ``supervisor/heartbeat`` take a lane of
their own (``control`` slots, waiting like the others), so a flood of other requests cannot
shed them (OWASP API4:2023).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.problems import problem_response

API_PREFIX = "/v1/"
#: The requests that make a stream safer or keep it supervised: the reserved lane.
CONTROL_PATH = re.compile(r"^/v1/streams/[^/]+/(?:stop|kill|mute|pause|supervisor/heartbeat)$")


class LoadSheddingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        running: int,
        waiting: int,
        wait_s: float,
        control: int = 8,
        metrics: ControlMetrics | None = None,
    ) -> None:
        self.app = app
        self.running = running
        self.waiting = waiting
        self.wait_s = wait_s
        self.metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(running)
        self._queued = 0
        self._control = _Lane(control, waiting, wait_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "POST" and CONTROL_PATH.match(path):
            await self._control.run(self.app, scope, receive, send, self._shed)
            return
        if not await self._admit():
            await self._shed(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()

    async def _admit(self) -> bool:
        """Take a slot, waiting at most ``wait_s`` behind at most ``waiting`` others."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an app served again on a new loop (tests) starts afresh
            self._loop, self._slots, self._queued = loop, asyncio.Semaphore(self.running), 0
        if not self._slots.locked():
            await self._slots.acquire()  # does not wait: a slot is free
            return True
        if self._queued >= self.waiting:
            return False
        self._queued += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
            return True
        except TimeoutError:
            return False
        finally:
            self._queued -= 1

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.metrics is not None:
            self.metrics.shed_requests.inc()
        response = problem_response(
            503,
            instance=scope.get("path"),
            detail=f"the server is at capacity ({self.running} requests running, "
            f"{self.waiting} waiting); retry after the time in Retry-After",
            kind="overloaded",
            headers={"Retry-After": "1"},
        )
        await response(scope, receive, send)


class _Lane:
    """A bounded lane of its own: ``slots`` at a time, ``waiting`` more for ``wait_s``."""

    def __init__(self, slots: int, waiting: int, wait_s: float) -> None:
        self.slots, self.waiting, self.wait_s = slots, waiting, wait_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem = asyncio.Semaphore(slots)
        self._queued = 0

    async def run(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        shed: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._sem, self._queued = loop, asyncio.Semaphore(self.slots), 0
        if self._sem.locked() and self._queued >= self.waiting:
            await shed(scope, receive, send)
            return
        self._queued += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await self._sem.acquire()
        except TimeoutError:
            await shed(scope, receive, send)
            return
        finally:
            self._queued -= 1
        try:
            await app(scope, receive, send)
        finally:
            self._sem.release()
