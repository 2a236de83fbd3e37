"""Viewer chat into a live stream (HTTP batches or a WebSocket), and the stream's transcript.

Chat goes to the stream's worker as one request per batch; the reply is each message's fate
(pending, merged, rejected with a reason, skipped). Answers then go on air and show up in the
transcript with ``source == "answer"``. The transcript is stored by the stream manager as the
worker speaks; any key of the tenant may read it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Body, Depends, Path, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from avatarcast.control.context import AppContext
from avatarcast.control.deps import (
    Caller,
    ContextDep,
    ReaderDep,
    SessionDep,
    caller_for_token,
    require_role,
)
from avatarcast.control.pagination import CursorQuery, LimitQuery, after_key, cut_page
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.schemas.supervision import (
    ChatMessageIn,
    ChatResult,
    Fate,
    TranscriptLinePublic,
    TranscriptPage,
)
from avatarcast.control.security import ROLE_GRANTS
from avatarcast.control.streaming import manager_of
from avatarcast.db.models_streams import TranscriptLine
from avatarcast.runner.base import CommandFailed

router = APIRouter(prefix="/v1/streams", tags=["chat"], responses=AUTH_PROBLEMS)
StreamIdPath = Annotated[str, Path(max_length=64)]
#: Chat comes from a platform integration (backend keys), or an operator.
ChatterDep = Annotated[Caller, Depends(require_role("backend"))]
_batch = TypeAdapter(list[ChatMessageIn])


def _check_limits(ctx: AppContext, messages: list[ChatMessageIn]) -> None:
    limits = ctx.settings.chat
    errors = [
        {
            "field": f"body.{i}.text",
            "message": f"longer than {limits.max_text} characters",
            "type": "value",
        }
        for i, m in enumerate(messages)
        if len(m.text) > limits.max_text
    ]
    if not messages or len(messages) > limits.max_batch:
        errors.insert(
            0,
            {
                "field": "body",
                "message": f"send 1 to {limits.max_batch} messages",
                "type": "value",
            },
        )
    if errors:
        raise validation_problem(errors)


def _command(messages: list[ChatMessageIn]) -> dict[str, Any]:
    return {"cmd": "chat", "messages": [m.model_dump(exclude_none=True) for m in messages]}


@router.post("/{stream_id}/chat", response_model=ChatResult, responses=problem_responses(404, 409))
def post_chat(
    stream_id: StreamIdPath,
    body: Annotated[list[ChatMessageIn], Body()],
    session: SessionDep,
    caller: ChatterDep,
    ctx: ContextDep,
) -> ChatResult:
    """A batch of viewer messages; returns each one's fate, in order."""
    get_stream(session, caller.tenant_id, stream_id)
    _check_limits(ctx, body)
    try:
        fates = anyio.from_thread.run(manager_of(ctx).runner.request, stream_id, _command(body))
    except CommandFailed as e:
        raise ProblemError(409, f"chat not taken: {e}", kind="not-on-air") from None
    return ChatResult(fates=[Fate.model_validate(f) for f in fates])


@router.websocket("/{stream_id}/chat/ws")
async def chat_socket(websocket: WebSocket, stream_id: str) -> None:
    """High-rate chat: each text frame is one message or a batch; each reply the fates.

    Authenticate with ``?key=`` or an ``Authorization: Bearer`` header. A frame that is not
    valid gets ``{"error": ...}`` back and the socket stays open.
    """
    ctx: AppContext = websocket.app.state.ctx
    token = websocket.query_params.get("key") or ""
    header = websocket.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    try:
        await run_in_threadpool(_admit, ctx, token, stream_id)
    except ProblemError as e:
        await websocket.close(code=4000 + e.status, reason=str(e)[:120])
        return
    await websocket.accept()
    runner = manager_of(ctx).runner
    try:
        while True:
            reply = await _handle(ctx, runner, stream_id, await websocket.receive_text())
            await websocket.send_text(json.dumps(reply, separators=(",", ":")))
    except WebSocketDisconnect:
        return


async def _handle(ctx: AppContext, runner: Any, stream_id: str, frame: str) -> dict[str, Any]:
    try:
        data = json.loads(frame)
        messages = _batch.validate_python(data if isinstance(data, list) else [data])
        _check_limits(ctx, messages)
    except ValueError as e:  # JSON and pydantic errors are both ValueErrors
        text = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        return {"error": f"not a chat message or batch: {text}"}
    except ProblemError as e:
        return {"error": str(e)}
    try:
        fates = await runner.request(stream_id, _command(messages))
    except CommandFailed as e:
        return {"error": f"chat not taken: {e}", "retryable": e.retryable}
    return {"fates": [Fate.model_validate(f).model_dump() for f in fates]}


def _admit(ctx: AppContext, token: str, stream_id: str) -> None:
    with ctx.sessions() as session:
        caller = caller_for_token(ctx, session, token)
        if "backend" not in ROLE_GRANTS.get(caller.role, frozenset()):
            raise ProblemError(403, "chat needs a backend or operator key", kind="forbidden")
        get_stream(session, caller.tenant_id, stream_id)


@router.get(
    "/{stream_id}/transcript", response_model=TranscriptPage, responses=problem_responses(404)
)
def transcript(
    stream_id: StreamIdPath,
    session: SessionDep,
    caller: ReaderDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    source: Annotated[str | None, Query(max_length=32)] = None,
) -> TranscriptPage:
    """What the stream said, oldest first, every run; ``source`` filters (e.g. ``answer``)."""
    get_stream(session, caller.tenant_id, stream_id)
    query = select(TranscriptLine).where(
        TranscriptLine.tenant_id == caller.tenant_id,
        TranscriptLine.stream_id == stream_id,
        TranscriptLine.id > after_key(cursor),
    )
    if source is not None:
        query = query.where(TranscriptLine.source == source)
    rows = session.scalars(query.order_by(TranscriptLine.id).limit(limit + 1)).all()
    page, nxt = cut_page(rows, limit, lambda r: r.id)
    return TranscriptPage(
        items=[TranscriptLinePublic.model_validate(r) for r in page], next_cursor=nxt
    )
