"""Liveness, readiness (the database answers) and Prometheus metrics. No API key needed.

``/metrics`` tells who streams what and how busy the server is: with ``api.metrics_token`` set
it needs ``Authorization: Bearer <token>``; without one it answers only loopback clients
(OWASP API8:2023: no open internals on a public address).

Liveness and metrics are ``async def``: they run on the event loop and never wait for a
threadpool thread, so they answer at once even while every thread waits on the database.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from avatarcast.control.deps import ContextDep
from avatarcast.control.leader import LEADERSHIP_KEY, Leadership
from avatarcast.control.lifecycle import lifecycle_of
from avatarcast.control.problems import ProblemError, problem_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(Health):
    #: ``leader`` or ``follower`` of the scheduler among API processes on one database
    #: (``control/leader.py``); absent before its first tick and without a scheduler
    scheduler: Literal["leader", "follower"] | None = None
    #: this process among the API's replicas (host:pid:random)
    replica: str | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    response_model_exclude_none=True,
    responses=problem_responses(503),
)
def readyz(ctx: ContextDep) -> Ready:
    lifecycle = lifecycle_of(ctx)
    if lifecycle is not None and lifecycle.draining:
        raise ProblemError(503, "draining: the server is stopping its streams", kind="not-ready")
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise ProblemError(
            503, f"database unreachable: {type(e).__name__}", kind="not-ready"
        ) from None
    leadership: Leadership | None = ctx.extras.get(LEADERSHIP_KEY)
    if leadership is None or leadership.leader is None:
        return Ready(status="ready")
    role: Literal["leader", "follower"] = "leader" if leadership.leader else "follower"
    return Ready(status="ready", scheduler=role, replica=leadership.replica)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403),
    },
)
async def metrics(request: Request, ctx: ContextDep) -> Response:
    token = ctx.settings.api.metrics_token.get_secret_value()
    if token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise ProblemError(
                401,
                "send the metrics token as 'Authorization: Bearer <token>'",
                kind="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    elif not _loopback(request.client.host if request.client else ""):
        raise ProblemError(
            403,
            "metrics answer loopback clients only; set api.metrics_token "
            "(AVATARCAST_API__METRICS_TOKEN) to scrape from elsewhere",
            kind="forbidden",
        )
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("testclient", "localhost")  # Starlette's in-process test client
