"""Every error as RFC 9457 ``application/problem+json``: type, title, status, detail, instance."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avatarcast.db.engine import unreachable

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Problem types are relative URIs; generic HTTP errors use ``about:blank`` as RFC 9457 says.
TYPE_BASE = "/problems/"


class Problem(BaseModel):
    """RFC 9457 problem details. Extra members (``errors``, ``retry_after``) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class FieldError(BaseModel):
    field: str = Field(description="Dotted location, e.g. body.price or query.limit")
    message: str
    type: str


class ValidationProblem(Problem):
    errors: list[FieldError]


class RowError(BaseModel):
    row: int | str
    field: str
    reason: str
    product_id: str | None = None


class ImportProblem(Problem):
    """An unreadable feed (row errors) or an invalid request (field errors)."""

    errors: list[RowError | FieldError]


class ProblemError(Exception):
    """Raise to answer with a problem. ``kind`` names the type (``/problems/<kind>``)."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    status: int,
    *,
    instance: str | None,
    detail: str | None = None,
    kind: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        instance=request.url.path,
        detail=exc.detail,
        kind=exc.kind,
        title=exc.title,
        headers=exc.headers,
        **exc.extensions,
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(
        exc.status_code, instance=request.url.path, detail=detail, headers=headers
    )


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())),
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return problem_response(
        422,
        instance=request.url.path,
        kind="validation",
        title="Request is not valid",
        detail=f"{len(errors)} field(s) failed validation",
        errors=errors,
    )


#: seconds a client is asked to wait while the database cannot be reached (a restart of
#: PostgreSQL took 0.2-0.8 s in the soak)
DATABASE_RETRY_AFTER_S = 2


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database is down or restarting: 503 with ``Retry-After``, not a 500 (the request
    was fine and a retry will do). Any other database error is a bug: re-raised, it becomes
    the logged 500 of ``UnhandledErrorMiddleware``."""
    if not unreachable(exc):
        raise exc
    log.warning("database unreachable on %s %s: %s", request.method, request.url.path, _why(exc))
    return problem_response(
        503,
        instance=request.url.path,
        detail="the database cannot be reached right now; retry shortly",
        kind="database-unavailable",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        retry_after=DATABASE_RETRY_AFTER_S,
    )


def _why(exc: Exception) -> str:
    """The driver's first line (bound values are hidden by the engine: no secrets in it)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class UnhandledErrorMiddleware:
    """Outermost: anything unexpected becomes a logged 500 problem, not a bare traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = problem_response(
                500, instance=scope.get("path"), detail="internal error; see the server log"
            )
            await response(scope, receive, send)


#: OpenAPI ``responses=`` entries for the problems every authenticated route may answer.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model: type[Problem] = ValidationProblem if status == 422 else Problem
        out[status] = {"model": model, "description": HTTPStatus(status).phrase}
    return out


def validation_problem(errors: list[dict[str, str]], detail: str | None = None) -> ProblemError:
    """A 422 like FastAPI's own for checks a route makes itself (field, message, type)."""
    return ProblemError(
        422,
        detail or f"{len(errors)} field(s) failed validation",
        kind="validation",
        title="Request is not valid",
        errors=errors,
    )


def from_pydantic(e: Any, prefix: str = "body") -> ProblemError:
    """A 422 problem from a pydantic ``ValidationError`` raised while handling a body."""
    return validation_problem(
        [
            {
                "field": ".".join([prefix, *(str(p) for p in err["loc"])]),
                "message": str(err["msg"]),
                "type": str(err["type"]),
            }
            for err in e.errors()
        ]
    )
