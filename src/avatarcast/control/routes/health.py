"""Liveness, readiness (the database answers) and Prometheus metrics. No key needed.

Liveness and metrics are ``async def``: they run on the event loop and never wait for a
threadpool thread, so they answer at once even while every thread waits on the database.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from avatarcast.control.deps import ContextDep
from avatarcast.control.problems import ProblemError, problem_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=problem_responses(503))
def readyz(ctx: ContextDep) -> Health:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise ProblemError(
            503, f"database unreachable: {type(e).__name__}", kind="not-ready"
        ) from None
    return Health(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(ctx: ContextDep) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
