"""Chat sources per stream (``/v1/streams/{id}/chat-sources``), their account of fates, and
the signed webhook that feeds a ``webhook`` source (``/v1/chat-hooks/{source_id}``).

Credentials (``token``) are write-only: stored sealed with the server key, never returned or
logged. See ``control.chatting`` for where the sources run, ``control.chat_store`` for the rows.
"""

from __future__ import annotations

import logging
import secrets
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from avatarcast.chatsources import Inbound
from avatarcast.chatsources.inbound import SourceHealth
from avatarcast.chatsources.webhook import SignatureError
from avatarcast.control.auditing import audit
from avatarcast.control.chat_edit import update_chat_source
from avatarcast.control.chat_state import signature_seen
from avatarcast.control.chat_store import (
    delete_source,
    insert_source,
    resolve_ca,
    stream_sources,
)
from avatarcast.control.chatting import ChatRegistry, StreamChat, registry_of
from avatarcast.control.context import AppContext
from avatarcast.control.deps import Caller, ContextDep, OperatorDep, ReaderDep
from avatarcast.control.manager import selected_products
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.schemas.chat_sources import (
    ChatAccount,
    ChatSourceIn,
    ChatSourcePublic,
    ChatSourceUpdate,
    WebhookPost,
)
from avatarcast.db.models_chat import ChatSourceRow

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat sources"], responses=AUTH_PROBLEMS)
StreamIdPath = Annotated[str, Path(max_length=64)]
SourceIdPath = Annotated[str, Path(max_length=64)]
_post = TypeAdapter(WebhookPost)


def _public(
    config: dict[str, Any], source_id: str, has_token: bool, health: Any
) -> ChatSourcePublic:
    return ChatSourcePublic.model_validate(
        {**config, "id": source_id, "has_token": has_token, "health": health}
    )


def _listed(registry: ChatRegistry, row: ChatSourceRow) -> ChatSourcePublic:
    chat = registry.streams.get(row.stream_id)
    source = chat.sources.get(row.id) if chat is not None else None
    if chat is not None and source is not None:
        return _public(source.public, row.id, row.secret is not None, chat.source_health(source))
    config = dict(row.config)
    if row.kind == "webhook":
        config["url"] = f"/v1/chat-hooks/{row.id}"
    idle = SourceHealth(source_id=row.id, kind=row.kind, state="stopped")
    if not row.config.get("enabled", True):
        idle.state = "disabled"
    return _public(config, row.id, row.secret is not None, idle.as_dict())


def _chat_of(registry: ChatRegistry, tenant_id: str, stream_id: str) -> StreamChat:
    chat = registry.streams.get(stream_id)
    if chat is None or chat.tenant_id != tenant_id:
        raise ProblemError(404, f"stream {stream_id!r} has no chat sources", kind="not-found")
    return chat


async def add_chat_source(
    ctx: AppContext, caller: Caller, stream_id: str, body: BaseModel
) -> ChatSourcePublic:
    """Store the source and start it, audited (``chat_source.add``, no secret); for this
    route and the console's form."""
    tenant_id = caller.tenant_id
    registry = registry_of(ctx)
    settings = ctx.settings.chat_sources
    config = body.model_dump(exclude_none=True)
    token_value = config.pop("token", None)
    token = token_value.get_secret_value() if token_value is not None else ""
    if config.get("ca_file"):
        resolve_ca(settings.ca_dir, config["ca_file"])

    def load(session: Any) -> tuple[str, list[Any]]:
        row = get_stream(session, tenant_id, stream_id)
        return row.lang, selected_products(session, row.tenant_id, row.product_ids)

    lang, products = await ctx.read(load)
    source_id = "cs_" + secrets.token_hex(6)

    def store() -> None:
        with ctx.sessions() as session:
            what = {"source_id": source_id, "config": config, "has_token": bool(token)}
            audit(session, caller, kind="chat_source.add", stream_id=stream_id, detail=what)
            insert_source(
                session,
                ctx.secrets,
                source_id=source_id,
                tenant_id=tenant_id,
                stream_id=stream_id,
                config=config,
                token=token,
                limit=settings.max_sources_per_stream,
            )

    await run_in_threadpool(store)
    if not config.get("enabled", True):  # stored, not opened until enabled
        if config["kind"] == "webhook":
            config["url"] = f"/v1/chat-hooks/{source_id}"
        idle = SourceHealth(source_id=source_id, kind=config["kind"], state="disabled")
        return _public(config, source_id, bool(token), idle.as_dict())
    chat = await registry.open_stream(stream_id, tenant_id, lang, products)
    source = registry.add(chat, {**config, "token": token}, source_id=source_id)
    return _public(source.public, source_id, bool(token), chat.source_health(source))


async def list_chat_sources(
    ctx: AppContext, tenant_id: str, stream_id: str
) -> list[ChatSourcePublic]:
    registry = registry_of(ctx)

    def load(session: Any) -> list[ChatSourceRow]:
        get_stream(session, tenant_id, stream_id)
        return stream_sources(session, tenant_id, stream_id)

    return [_listed(registry, row) for row in await ctx.read(load)]


async def remove_chat_source(
    ctx: AppContext, caller: Caller, stream_id: str, source_id: str
) -> None:
    """Remove the source (audited as ``chat_source.remove``) and stop it."""
    tenant_id = caller.tenant_id
    registry = registry_of(ctx)

    def drop() -> bool:
        with ctx.sessions() as session:
            what = {"source_id": source_id}
            audit(session, caller, kind="chat_source.remove", stream_id=stream_id, detail=what)
            return delete_source(session, tenant_id, stream_id, source_id)

    if not await run_in_threadpool(drop):
        raise ProblemError(404, f"no chat source {source_id!r}", kind="not-found")
    chat = registry.streams.get(stream_id)
    if chat is not None and chat.tenant_id == tenant_id:
        registry.remove(chat, source_id)


@router.post(
    "/v1/streams/{stream_id}/chat-sources",
    status_code=201,
    response_model=ChatSourcePublic,
    responses=problem_responses(404, 409, 422),
)
async def add_source(
    stream_id: StreamIdPath,
    body: Annotated[ChatSourceIn, Body()],
    caller: OperatorDep,
    ctx: ContextDep,
) -> ChatSourcePublic:
    """Connect a chat source to the stream; it is stored and runs until removed (a restarted
    server opens it again while the stream is on air)."""
    return await add_chat_source(ctx, caller, stream_id, body)


@router.get(
    "/v1/streams/{stream_id}/chat-sources",
    response_model=list[ChatSourcePublic],
    responses=problem_responses(404),
)
async def list_sources(
    stream_id: StreamIdPath, caller: ReaderDep, ctx: ContextDep
) -> list[ChatSourcePublic]:
    return await list_chat_sources(ctx, caller.tenant_id, stream_id)


@router.delete(
    "/v1/streams/{stream_id}/chat-sources/{source_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404),
)
async def remove_source(
    stream_id: StreamIdPath, source_id: SourceIdPath, caller: OperatorDep, ctx: ContextDep
) -> Response:
    await remove_chat_source(ctx, caller, stream_id, source_id)
    return Response(status_code=204)


@router.patch(
    "/v1/streams/{stream_id}/chat-sources/{source_id}",
    response_model=ChatSourcePublic,
    responses=problem_responses(404, 422),
)
async def update_source(
    stream_id: StreamIdPath,
    source_id: SourceIdPath,
    body: Annotated[ChatSourceUpdate, Body()],
    caller: OperatorDep,
    ctx: ContextDep,
) -> ChatSourcePublic:
    """Change a source (channel, username, token, enabled, ...): stored, audited (no secret
    in the entry) and, if it runs, restarted with the change."""
    row, _ = await update_chat_source(ctx, caller, stream_id, source_id, body)
    return _listed(registry_of(ctx), row)


@router.get(
    "/v1/streams/{stream_id}/chat-account",
    response_model=ChatAccount,
    responses=problem_responses(404),
)
async def chat_account(stream_id: StreamIdPath, caller: ReaderDep, ctx: ContextDep) -> ChatAccount:
    """The account of every message the stream's sources took in, by fate and reason."""
    chat = _chat_of(registry_of(ctx), caller.tenant_id, stream_id)
    return ChatAccount.model_validate(chat.intake.snapshot())


@router.get("/v1/streams/{stream_id}/chat-fates", responses=problem_responses(404))
async def chat_fates(
    stream_id: StreamIdPath,
    caller: ReaderDep,
    ctx: ContextDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    fate: Annotated[str | None, Query(max_length=32)] = None,
) -> list[dict[str, object]]:
    """The latest fates, newest last; viewers appear only as pseudonyms."""
    chat = _chat_of(registry_of(ctx), caller.tenant_id, stream_id)
    items = chat.intake.ledger.recent(chat.intake.ledger.size)
    if fate is not None:
        items = [f for f in items if f.fate == fate]
    return [f.as_dict() for f in items[-limit:]]


@router.post(
    "/v1/chat-hooks/{source_id}",
    status_code=202,
    responses=problem_responses(401, 404, 409, 413, 422, 503),
)
async def webhook(source_id: SourceIdPath, request: Request, ctx: ContextDep) -> dict[str, Any]:
    """Signed chat from a merchant's relay: ``{"messages": [{id, viewer_id, name, text}]}``
    or one such message, HMAC-SHA256 signed (see ``chatsources.webhook``)."""
    registry = registry_of(ctx)
    found = registry.webhooks.get(source_id)
    if found is None:
        raise ProblemError(404, f"no webhook chat source {source_id!r}", kind="not-found")
    chat, source = found
    body = await _read_limited(request, ctx.settings.chat_sources.webhook_max_bytes)
    assert source.verifier is not None
    try:
        source.verifier.verify(
            request.headers.get("x-avatarcast-timestamp"),
            request.headers.get("x-avatarcast-signature"),
            body,
        )
    except SignatureError as e:
        kind = "replay" if e.status == 409 else "bad-signature"
        raise ProblemError(e.status, str(e), kind=kind) from None
    post = _parse(body)
    signature = request.headers.get("x-avatarcast-signature", "").strip()
    seen = partial(signature_seen, source_id=source_id, signature=signature)
    if await ctx.read(seen):  # taken before a restart, or by another server
        raise ProblemError(409, "this post was already taken (replay)", kind="replay")
    inbound = [
        Inbound(
            source_id=source_id,
            platform="webhook",
            message_id=m.id,
            viewer_id=m.viewer_id,
            name=m.name,
            text=m.text,
            reply_to=m.reply_to,
        )
        for m in post.messages
    ]
    try:
        fates = await registry.take_post(source, chat, inbound, signature)
    except Exception as e:  # taken in memory, saved by a later round; a retry counts once
        log.exception("chat source %s: a webhook post was not saved", source_id)
        source.verifier.forget(request.headers.get("x-avatarcast-signature", ""))
        detail = "the post was taken but could not be saved yet; retry it (counted once)"
        raise ProblemError(503, detail, kind="not-ready") from e
    return {
        "taken": sum(f is not None for f in fates),
        "duplicates": sum(f is None for f in fates),
    }


def _parse(body: bytes) -> WebhookPost:
    try:
        import json

        data = json.loads(body)
        if isinstance(data, dict) and "messages" not in data:
            data = {"messages": [data]}
        return _post.validate_python(data)
    except ValidationError as e:
        errors = [
            {
                "field": "body." + ".".join(str(x) for x in err["loc"]),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in e.errors()[:20]
        ]
        raise validation_problem(errors) from None
    except ValueError as e:
        raise validation_problem(
            [{"field": "body", "message": f"not JSON: {e}", "type": "json"}]
        ) from None


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"the body is over {limit} bytes", kind="too-large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"the body is over {limit} bytes", kind="too-large")
        chunks.append(chunk)
    return b"".join(chunks)
