"""Prometheus metrics of one app: request latency here, stream gauges set by the runner.

Each app owns its registry, so several apps (tests, one process per tenant) never collide.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ControlMetrics:
    """The metrics the control plane exports; the StreamRunner sets the ``stream_*`` gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_latency = Histogram(
            "avatarcast_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.shed_requests = Counter(
            "avatarcast_http_requests_shed",
            "API requests answered 503 at once because the server was at capacity.",
            registry=r,
        )
        self.streams = Gauge(
            "avatarcast_streams", "Streams by state.", ["tenant", "state"], registry=r
        )
        self.stream_fps = Gauge(
            "avatarcast_stream_fps", "Measured output frame rate.", ["stream"], registry=r
        )
        self.stream_encode_lag = Gauge(
            "avatarcast_stream_encode_lag_seconds",
            "How far the encoder is behind the programme clock.",
            ["stream"],
            registry=r,
        )
        self.stream_av_offset = Gauge(
            "avatarcast_stream_av_offset_seconds",
            "Audio minus video presentation time at the output.",
            ["stream"],
            registry=r,
        )
        self.stream_reconnects = Counter(
            "avatarcast_stream_reconnects",
            "Reconnections to a destination, by its position in the stream's list.",
            ["stream", "destination"],
            registry=r,
        )
        self.stream_glitches = Counter(
            "avatarcast_stream_glitches",
            "On-air glitches the monitors found in the encoded output, by monitor.",
            ["stream", "monitor"],
            registry=r,
        )
        self.stream_remedies = Counter(
            "avatarcast_stream_remedies",
            "Remedies the monitors took (re-voice, restart the encoder ...), by action.",
            ["stream", "action"],
            registry=r,
        )
        self.product_changes = Counter(
            "avatarcast_product_changes",
            "Products created, updated or deleted through the API.",
            ["tenant"],
            registry=r,
        )
        self.stream_events = Counter(
            "avatarcast_stream_events",
            "Stream events by kind (crashed, restarted, glitch, recording_stopped ...).",
            ["kind"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "avatarcast_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retry, dead.",
            ["outcome"],
            registry=r,
        )
        self.draining = Gauge(
            "avatarcast_draining",
            "1 while the server drains its streams before it exits (SIGTERM).",
            registry=r,
        )
        self.database_up = Gauge(
            "avatarcast_database_up",
            "1 while this API process reaches its database, 0 while it cannot (control/dbwatch).",
            registry=r,
        )
        self.database_up.set(1)

        self.gc_frozen = Gauge(
            "avatarcast_python_gc_frozen_objects",
            "Objects kept out of Python's garbage collection since start-up (gc.freeze).",
            registry=r,
        )
        self.gc_frozen.set_function(gc.get_freeze_count)

    def forget_stream(self, stream_id: str) -> None:
        """Drop a finished stream's series so the registry does not grow forever."""
        for gauge in (self.stream_fps, self.stream_encode_lag, self.stream_av_offset):
            try:
                gauge.remove(stream_id)
            except KeyError:
                pass


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    return route.path if isinstance(route, Route | Mount | WebSocketRoute) else "unmatched"


class LatencyMiddleware:
    """Observe every HTTP request under its route template (``/v1/products/{product_id}``)."""

    def __init__(self, app: ASGIApp, *, metrics: ControlMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            labels: dict[str, Any] = {
                "method": scope.get("method", ""),
                "route": route_template(scope),
                "status": str(status),
            }
            self.metrics.request_latency.labels(**labels).observe(time.perf_counter() - start)
