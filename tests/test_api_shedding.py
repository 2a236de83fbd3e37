"""Bounded admission: past capacity the API answers 503 at once, health never waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from starlette.types import Receive, Scope, Send

from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.shedding import LoadSheddingMiddleware


class HeldApp:
    """An ASGI app whose ``/v1/hold`` answers only when ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started += 1
        if scope["path"] == "/v1/hold":
            await self.gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_past_capacity_requests_get_503_with_retry_after_and_health_does_not_wait() -> None:
    async def scenario() -> None:
        inner = HeldApp()
        metrics = ControlMetrics()
        app = LoadSheddingMiddleware(inner, running=1, waiting=1, wait_s=30, metrics=metrics)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = asyncio.create_task(c.get("/v1/hold"))
            await _until(lambda: inner.started == 1)
            queued = asyncio.create_task(c.get("/v1/products"))
            await _until(lambda: app._queued == 1)
            shed = await c.get("/v1/products")
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert shed.headers["content-type"].startswith("application/problem+json")
            body = shed.json()
            assert body["type"] == "/problems/overloaded" and body["status"] == 503
            assert (await c.get("/healthz")).status_code == 200  # not held back
            assert inner.started == 2  # the shed request never reached the app
            inner.gate.set()
            assert (await first).status_code == 200
            assert (await queued).status_code == 200
            assert (await c.get("/v1/products")).status_code == 200  # the slots came back
        assert metrics.shed_requests._value.get() == 1

    asyncio.run(scenario())


def test_a_request_that_waited_wait_s_is_answered_503() -> None:
    async def scenario() -> None:
        inner = HeldApp()
        app = LoadSheddingMiddleware(inner, running=1, waiting=10, wait_s=0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = asyncio.create_task(c.get("/v1/hold"))
            await _until(lambda: inner.started == 1)
            late = await c.get("/v1/products")
            assert late.status_code == 503
            assert app._queued == 0
            inner.gate.set()
            assert (await first).status_code == 200
            assert (await c.get("/v1/products")).status_code == 200

    asyncio.run(scenario())
