"""WHEP playback of a running stream, through the API, with the stream's viewer token.

Each worker serves WHEP on its own loopback port behind a token only the runner knows. These
routes check the stream's viewer token (``?token=`` or ``Authorization: Bearer``; no API key),
forward the SDP offer to the worker and rewrite its ``Location`` under
``/v1/streams/{id}/whep/<session>``. The viewer token is shown to operator and admin keys, and to
keys linked to a supervisor record (so a supervisor can watch what they supervise), in the
stream's create and GET responses; operators can rotate it and sign short-lived viewer tokens
for embedding (``avatarcast.control.viewer_tokens``). Playback requests have a budget of their
own per client address.
"""

from __future__ import annotations

import functools
import secrets
import ssl
import time
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import httpx
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import Field
from sqlalchemy.orm import Session

from avatarcast.control.auditing import audit
from avatarcast.control.context import AppContext
from avatarcast.control.deps import ContextDep, OperatorDep, SessionDep
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.ratelimit import retry_after_header
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.common import In, Out
from avatarcast.control.streaming import manager_of
from avatarcast.control.viewer_tokens import ViewerBudget, sign_viewer_token, viewer_token_valid
from avatarcast.db.models_streams import StreamRow
from avatarcast.output.whep_http import player_html

router = APIRouter(prefix="/v1/streams", tags=["playback"])
StreamIdPath = Annotated[str, Path(max_length=64)]
TokenQuery = Annotated[
    str | None, Query(max_length=128, description="The stream's viewer token (whep_token)")
]
MAX_OFFER_BYTES = 64 * 1024
#: The worker answers once ICE gathering is complete, which can take a few seconds.
FORWARD_TIMEOUT = httpx.Timeout(20.0, connect=2.0)
_ANSWER: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The SDP answer; Location names the session",
        "content": {"application/sdp": {"schema": {"type": "string"}}},
    }
}


def _viewer_token(request: Request, token: str | None) -> str | None:
    if token:
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _stored_token(ctx: AppContext, stream_id: str) -> str | None:
    with ctx.sessions() as session:
        row = session.get(StreamRow, stream_id)
        return row.whep_token if row is not None else None


#: Playback pages and answers carry the viewer token in their URL: never send it on as a
#: Referer, never keep it in a cache.
NO_LEAK = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_BUDGET = "viewer_budget"


def _spend_budget(ctx: AppContext, request: Request) -> None:
    """429 when this client address (or every viewer together) is over the playback budget."""
    budget: ViewerBudget | None = ctx.extras.get(_BUDGET)
    if budget is None:
        whep = ctx.settings.whep
        budget = ctx.extras[_BUDGET] = ViewerBudget(
            per_client_rate=whep.viewer_rate,
            per_client_burst=whep.viewer_burst,
            total_rate=whep.viewer_total_rate,
            total_burst=whep.viewer_total_burst,
        )
    wait = budget.take(request.client.host if request.client else "-")
    if wait > 0:
        raise ProblemError(
            429,
            "too many playback requests: try again later",
            kind="rate-limited",
            headers={"Retry-After": retry_after_header(wait)},
        )


async def _authorise(ctx: AppContext, request: Request, stream_id: str, token: str | None) -> None:
    """429 over the playback budget, 404 for an unknown stream, 401 for a missing or wrong
    viewer token (the stream's own, or a signed one that has not expired)."""
    _spend_budget(ctx, request)
    stored = await run_in_threadpool(_stored_token, ctx, stream_id)
    if stored is None:
        raise ProblemError(404, f"no stream {stream_id!r}", kind="not-found")
    given = _viewer_token(request, token)
    if given is None or not viewer_token_valid(given, stream_token=stored, stream_id=stream_id):
        raise ProblemError(
            401,
            "send the stream's viewer token as ?token= or a bearer token",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="whep"'},
        )


def _worker(ctx: AppContext, stream_id: str) -> tuple[str, str]:
    endpoint = manager_of(ctx).runner.whep_endpoint(stream_id)
    if endpoint is None:
        raise ProblemError(
            503, "the stream is not on air", kind="not-on-air", headers={"Retry-After": "2"}
        )
    return endpoint


@router.get(
    "/{stream_id}/player",
    response_class=Response,
    responses={
        200: {"description": "An HTML player page", "content": {"text/html": {"schema": {}}}},
        **problem_responses(401, 404, 422, 429),
    },
)
async def player(
    stream_id: StreamIdPath, request: Request, ctx: ContextDep, token: TokenQuery = None
) -> Response:
    """A one-page browser player for the stream (open it with ``?token=``)."""
    await _authorise(ctx, request, stream_id, token)
    return HTMLResponse(player_html(f"/v1/streams/{stream_id}/whep"), headers=NO_LEAK)


@router.post(
    "/{stream_id}/whep",
    status_code=201,
    response_class=Response,
    responses={**_ANSWER, **problem_responses(400, 401, 404, 413, 415, 422, 429, 502, 503)},
)
async def whep_offer(
    stream_id: StreamIdPath, request: Request, ctx: ContextDep, token: TokenQuery = None
) -> Response:
    """WHEP (RFC 9725): POST an SDP offer as ``application/sdp``, get the answer back.

    No API key: the stream's viewer token. The body is not declared in the OpenAPI document
    because generic clients and fuzzers cannot produce SDP.
    """
    await _authorise(ctx, request, stream_id, token)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise ProblemError(415, "send the offer as application/sdp", kind="unsupported-media")
    offer = await request.body()
    if len(offer) > MAX_OFFER_BYTES:
        raise ProblemError(413, f"offers are limited to {MAX_OFFER_BYTES} bytes", kind="too-large")
    base, secret = _worker(ctx, stream_id)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"}
    answer = await _forward("POST", f"{base}/whep", headers=headers, content=offer)
    if answer.status_code != 201:
        _relay_problem(answer)
    session_id = answer.headers.get("location", "").rstrip("/").rsplit("/", 1)[-1]
    out = {"Location": f"/v1/streams/{stream_id}/whep/{session_id}", **NO_LEAK}
    if "link" in answer.headers:
        out["Link"] = answer.headers["link"]
    return Response(answer.content, status_code=201, media_type="application/sdp", headers=out)


@router.delete(
    "/{stream_id}/whep/{session_id}",
    response_class=Response,
    responses={
        200: {"description": "The session ended"},
        **problem_responses(401, 404, 422, 429, 502, 503),
    },
)
async def whep_end(
    stream_id: StreamIdPath,
    session_id: Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9_-]+$")],
    request: Request,
    ctx: ContextDep,
    token: TokenQuery = None,
) -> Response:
    await _authorise(ctx, request, stream_id, token)
    base, secret = _worker(ctx, stream_id)
    headers = {"Authorization": f"Bearer {secret}"}
    answer = await _forward("DELETE", f"{base}/whep/{session_id}", headers=headers)
    if answer.status_code >= 300:
        _relay_problem(answer)
    return Response(status_code=200)


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default context, made once: a client building its own loads the CA bundle,
    ~17 ms of CPU per viewer offer, ICE patch or hang-up (measured 2026-12-07)."""
    return httpx.create_ssl_context()


async def _forward(method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        async with httpx.AsyncClient(
            timeout=FORWARD_TIMEOUT, trust_env=False, verify=_tls()
        ) as client:
            return await client.request(method, url, **kwargs)
    except httpx.HTTPError as e:
        raise ProblemError(
            502, f"the stream's WHEP server did not answer: {type(e).__name__}", kind="bad-gateway"
        ) from None


def _relay_problem(answer: httpx.Response) -> NoReturn:
    """The worker's refusal (bad offer, viewer limit) as our own problem; 401 is ours to give."""
    status = answer.status_code if answer.status_code in (400, 404, 413, 415, 503) else 502
    try:
        detail = str(answer.json().get("detail", ""))
    except ValueError:
        detail = ""
    raise ProblemError(status, detail or f"the stream's WHEP server answered {answer.status_code}")


class ViewerTokenRequest(In):
    ttl_s: int = Field(default=3600, ge=60, description="Seconds the token is valid")


class ViewerTokenPublic(Out):
    token: str = Field(description="Give it as ?token= or a bearer token to the WHEP routes")
    expires_at: datetime
    player_url: str


class StreamTokenPublic(Out):
    whep_token: str = Field(description="The stream's new viewer token; the old one is void")


def _own_stream(session: Session, tenant_id: str, stream_id: str) -> StreamRow:
    row = session.get(StreamRow, stream_id)
    if row is None or row.tenant_id != tenant_id:
        raise ProblemError(404, f"no stream {stream_id!r}", kind="not-found")
    return row


@router.post(
    "/{stream_id}/viewer-tokens",
    status_code=201,
    response_model=ViewerTokenPublic,
    responses={**AUTH_PROBLEMS, **problem_responses(404, 422)},
)
def sign_viewer(
    stream_id: StreamIdPath,
    body: ViewerTokenRequest,
    session: SessionDep,
    caller: OperatorDep,
    ctx: ContextDep,
) -> ViewerTokenPublic:
    """A short-lived viewer token for embedding the player in a page (HMAC, with expiry)."""
    row = _own_stream(session, caller.tenant_id, stream_id)
    limit = ctx.settings.whep.viewer_token_max_ttl_s
    if body.ttl_s > limit:
        message = f"at most {limit} seconds (whep.viewer_token_max_ttl_s)"
        raise validation_problem([{"field": "body.ttl_s", "message": message, "type": "range"}])
    expires = int(time.time()) + body.ttl_s
    token = sign_viewer_token(row.whep_token, stream_id, expires)
    detail = {"expires": expires}
    audit(session, caller, kind="viewer_token_signed", stream_id=stream_id, detail=detail)
    session.commit()
    return ViewerTokenPublic(
        token=token,
        expires_at=datetime.fromtimestamp(expires, UTC),
        player_url=f"/v1/streams/{stream_id}/player?token={token}",
    )


@router.post(
    "/{stream_id}/viewer-token/rotate",
    response_model=StreamTokenPublic,
    responses={**AUTH_PROBLEMS, **problem_responses(404, 422)},
)
def rotate_viewer_token(
    stream_id: StreamIdPath, session: SessionDep, caller: OperatorDep
) -> StreamTokenPublic:
    """A new viewer token for the stream: the old one and every token signed with it stop
    working at once (viewers already watching keep their session)."""
    row = _own_stream(session, caller.tenant_id, stream_id)
    row.whep_token = secrets.token_urlsafe(24)
    audit(session, caller, kind="viewer_token_rotated", stream_id=stream_id)
    session.commit()
    return StreamTokenPublic(whep_token=row.whep_token)
