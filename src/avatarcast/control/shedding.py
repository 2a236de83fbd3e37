"""Bounded admission for ``/v1`` requests: a server past its capacity says so at once.

Without a bound, every request a client sends is worked off, however late: clients that gave
up after their timeout leave their requests queued for the threadpool and the database, and
the server stays slow long after the load has gone. Here at most ``running`` API requests run
at a time, at most ``waiting`` more wait, each at most ``wait_s``; the others are answered
``503`` with ``Retry-After`` as a problem, before their body is read. Health, readiness and
metrics are never held back, nor are WebSockets (a chat socket lives for hours).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.problems import problem_response

API_PREFIX = "/v1/"


class LoadSheddingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        running: int,
        waiting: int,
        wait_s: float,
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(API_PREFIX):
            await self.app(scope, receive, send)
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
