"""Viewer chat into a live stream (HTTP batches or a WebSocket), and the stream's transcript.

Chat goes to the stream's worker as one request per batch; the reply is each message's fate
(pending, merged, rejected with a reason, skipped). Answers then go on air and show up in the
transcript with ``source == "answer"``. The transcript is stored by the stream manager as the
worker speaks; any key of the tenant may read it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Body, Depends, Path, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from avatarcast.commands import WithdrawAnswers, command_to_wire
from avatarcast.control import permissions
from avatarcast.control.auditing import audit
from avatarcast.control.context import AppContext
from avatarcast.control.deps import (
    Caller,
    ContextDep,
    ReaderDep,
    RoleCheck,
    SessionDep,
    SupervisorDep,
    caller_for_token,
)
from avatarcast.control.keycache import KeyRecord
from avatarcast.control.pagination import CursorQuery, LimitQuery, after_key, cut_page
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.ratelimit import TokenBuckets
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.schemas.supervision import (
    BlockResult,
    ChatMessageIn,
    ChatResult,
    Fate,
    TranscriptLinePublic,
    TranscriptPage,
)
from avatarcast.control.security import secret_matches, split_token
from avatarcast.control.streaming import manager_of
from avatarcast.db.events import record_event
from avatarcast.db.models_streams import TranscriptLine
from avatarcast.runner.base import CommandFailed, StreamEvent

router = APIRouter(prefix="/v1/streams", tags=["chat"], responses=AUTH_PROBLEMS)
StreamIdPath = Annotated[str, Path(max_length=64)]
#: Chat comes from a platform integration (backend keys), or an operator.
ChatterDep = Annotated[Caller, Depends(RoleCheck(permissions.BACKEND))]
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


def _budget(ctx: AppContext) -> TokenBuckets:
    """Messages per stream, all sockets and batches together (``chat.stream_messages_*``)."""
    limits = ctx.settings.chat
    buckets: TokenBuckets = ctx.extras.setdefault(
        "chat_budget",
        TokenBuckets(rate=limits.stream_messages_per_s, burst=limits.stream_messages_burst),
    )
    return buckets


async def _deliver(
    ctx: AppContext, runner: Any, stream_id: str, messages: list[ChatMessageIn]
) -> list[Fate]:
    """Hand the messages within the stream's budget to its worker; the others are rejected
    here with reason ``budget``, so a flood never reaches the stream (OWASP API4:2023)."""
    budget = _budget(ctx)
    within = [budget.take(stream_id) == 0.0 for _ in messages]
    taken = [m for m, ok in zip(messages, within, strict=True) if ok]
    fates = iter(await runner.request(stream_id, _command(taken)) if taken else ())
    rate = ctx.settings.chat.stream_messages_per_s
    out = []
    for n, (m, ok) in enumerate(zip(messages, within, strict=True)):
        if ok:
            out.append(Fate.model_validate(next(fates)))
            continue
        out.append(
            Fate(
                id=m.id or f"budget-{n}",
                viewer_id=m.viewer_id,
                name=m.name,
                text=m.text,
                outcome="rejected",
                reason=f"budget: the stream takes {rate:g} messages a second",
            )
        )
    return out


@router.post("/{stream_id}/chat", response_model=ChatResult, responses=problem_responses(404, 409))
def post_chat(
    stream_id: StreamIdPath,
    body: Annotated[list[ChatMessageIn] | ChatMessageIn, Body()],
    session: SessionDep,
    caller: ChatterDep,
    ctx: ContextDep,
) -> ChatResult:
    """One viewer message, or a batch of them; returns each one's fate, in order."""
    messages = body if isinstance(body, list) else [body]
    row = get_stream(session, caller.tenant_id, stream_id)
    _check_limits(ctx, messages)
    manager = manager_of(ctx)
    try:
        fates = anyio.from_thread.run(_deliver, ctx, manager.runner, stream_id, messages)
    except CommandFailed as e:
        raise ProblemError(409, f"chat not taken: {e}", kind="not-on-air") from None
    _tell(manager, row.tenant_id, stream_id, fates)
    return ChatResult(fates=fates)


def _tell(manager: Any, tenant_id: str, stream_id: str, fates: list[Fate]) -> None:
    """Chat fates go to the manager's listeners (the console's chat panel and approvals)."""
    detail = {"fates": [f.model_dump(mode="json") for f in fates]}
    manager.notify(
        StreamEvent(stream_id=stream_id, tenant_id=tenant_id, kind="chat", detail=detail)
    )


@router.post(
    "/{stream_id}/chat/{message_id}/block",
    response_model=BlockResult,
    responses=problem_responses(404, 409),
)
def block_message(
    stream_id: StreamIdPath,
    message_id: Annotated[str, Path(max_length=128)],
    session: SessionDep,
    caller: SupervisorDep,
    ctx: ContextDep,
) -> BlockResult:
    """Block one viewer message: consoles hide it, and every answer to it that is not on air
    yet is withdrawn (``WithdrawAnswers``, applied at the next frame): one awaiting approval,
    one approved and on its way to the voice, or a question still queued. An answer already
    spoken cannot be taken back. Withdrawn answers are an ``answers_withdrawn`` event."""
    row = get_stream(session, caller.tenant_id, stream_id)
    manager = manager_of(ctx)
    withdrawn: list[str] = []
    if stream_id in manager.runner.running():
        command = command_to_wire(WithdrawAnswers(message_id=message_id))
        try:
            result = anyio.from_thread.run(manager.runner.request, stream_id, command)
        except CommandFailed:
            result = None  # not on air yet: nothing was answered
        withdrawn = [str(i) for i in result or ()]
    rejected = [i for i in withdrawn if not i.startswith("answer-")]
    detail = {"message_id": message_id, "rejected_answers": rejected, "withdrawn": withdrawn}
    audit(session, caller, kind="chat_message_blocked", stream_id=row.id, detail=detail)
    events = [
        StreamEvent(stream_id=row.id, tenant_id=row.tenant_id, kind="chat_blocked", detail=detail)
    ]
    if withdrawn:
        gone = {"message_id": message_id, "answers": withdrawn}
        record_event(
            session,
            tenant_id=row.tenant_id,
            stream_id=row.id,
            kind="answers_withdrawn",
            detail=gone,
        )
        events.append(
            StreamEvent(
                stream_id=row.id, tenant_id=row.tenant_id, kind="answers_withdrawn", detail=gone
            )
        )
    session.commit()
    for event in events:
        manager.notify(event)
    return BlockResult(
        stream_id=row.id,
        message_id=message_id,
        rejected_answers=rejected,
        withdrawn_answers=withdrawn,
    )


@router.websocket("/{stream_id}/chat/ws")
async def chat_socket(websocket: WebSocket, stream_id: str) -> None:
    """High-rate chat: each text frame is one message or a batch; each reply the fates.

    Authenticate with ``?key=`` or an ``Authorization: Bearer`` header. A frame that is not
    valid gets ``{"error": ...}`` back and the socket stays open. The key is checked again
    every ``api.key_cache_s`` (at least each second): a revoked key closes the socket (4401)
    within that bound, idle or not. Frames over ``chat.max_frame_bytes`` close it (1009);
    frames beyond ``chat.frames_per_s`` wait their turn (OWASP API4:2023).
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
        async with asyncio.TaskGroup() as tg:
            watch = tg.create_task(_watch_key(ctx, websocket, token))
            await _serve_frames(ctx, websocket, runner, stream_id)
            watch.cancel()
    except* (WebSocketDisconnect, _Closed):
        pass  # the client left, or the server closed the socket with a code that says why


class _Closed(Exception):
    """The server closed the socket (key revoked, frame too large)."""


async def _watch_key(ctx: AppContext, websocket: WebSocket, token: str) -> None:
    """Re-check the key each window; close the socket once it no longer admits."""
    window = min(max(ctx.settings.api.key_cache_s, 0.25), 1.0)
    while True:
        await asyncio.sleep(window)
        if not await _key_still_valid(ctx, token):
            await websocket.close(code=4401, reason="the API key was revoked")
            raise _Closed


async def _key_still_valid(ctx: AppContext, token: str) -> bool:
    """The key still stands (not revoked, its tenant not deleted); no rate-limit token taken.
    A cached record is checked on the loop; only a cache miss reads the database."""
    parts = split_token(token)
    if parts is None:
        return False
    record = ctx.keys.get(parts[0])
    if record is None:
        record = await run_in_threadpool(_load_record, ctx, parts[0])
    return record is not None and not record.revoked and secret_matches(*parts, record.secret_hash)


def _load_record(ctx: AppContext, key_id: str) -> KeyRecord | None:
    with ctx.sessions() as session:
        return ctx.keys.load(session, key_id)


async def _serve_frames(ctx: AppContext, websocket: WebSocket, runner: Any, stream_id: str) -> None:
    limits = ctx.settings.chat
    pace = _Pace(rate=limits.frames_per_s, burst=limits.frames_burst)
    while True:
        frame = await websocket.receive_text()
        if len(frame) > limits.max_frame_bytes or len(frame.encode()) > limits.max_frame_bytes:
            await websocket.close(code=1009, reason=f"frame over {limits.max_frame_bytes} bytes")
            raise _Closed
        await asyncio.sleep(pace.wait())
        reply = await _handle(ctx, runner, stream_id, frame)
        await websocket.send_text(json.dumps(reply, separators=(",", ":")))


class _Pace:
    """A token bucket that says how long to wait: frames beyond the rate are slowed, not
    dropped, so a client that floods only waits on its own socket."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def wait(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


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
        fates = await _deliver(ctx, runner, stream_id, messages)
    except CommandFailed as e:
        return {"error": f"chat not taken: {e}", "retryable": e.retryable}
    result = [Fate.model_validate(f) for f in fates]
    manager = manager_of(ctx)
    tenant_id = manager.tenant_of(stream_id)
    if tenant_id is not None:
        _tell(manager, tenant_id, stream_id, result)
    return {"fates": [f.model_dump() for f in result]}


def _admit(ctx: AppContext, token: str, stream_id: str) -> None:
    with ctx.sessions() as session:
        caller = caller_for_token(ctx, session, token)
        if "backend" not in caller.grants:
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
