"""Chat sources per stream (``/v1/streams/{id}/chat-sources``), their account of fates, and
the signed webhook that feeds a ``webhook`` source (``/v1/chat-hooks/{source_id}``).

Credentials (``token``) are write-only: kept in memory by the running server only, never
returned or logged. See ``control.chatting`` for where the sources run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from avatarcast.chatsources import Inbound
from avatarcast.chatsources.webhook import SignatureError
from avatarcast.control.chatting import ChatRegistry, StreamChat, registry_of
from avatarcast.control.deps import ContextDep, OperatorDep, ReaderDep
from avatarcast.control.manager import selected_products
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.schemas.chat_sources import (
    ChatAccount,
    ChatSourceIn,
    ChatSourcePublic,
    WebhookPost,
)

router = APIRouter(tags=["chat sources"], responses=AUTH_PROBLEMS)
StreamIdPath = Annotated[str, Path(max_length=64)]
SourceIdPath = Annotated[str, Path(max_length=64)]
_post = TypeAdapter(WebhookPost)


def _public(source: Any) -> ChatSourcePublic:
    return ChatSourcePublic.model_validate({**source.public, "health": source.health.as_dict()})


def _chat_of(registry: ChatRegistry, tenant_id: str, stream_id: str) -> StreamChat:
    chat = registry.streams.get(stream_id)
    if chat is None or chat.tenant_id != tenant_id:
        raise ProblemError(404, f"stream {stream_id!r} has no chat sources", kind="not-found")
    return chat


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
    """Connect a chat source to the stream; it runs until removed (or the server stops)."""
    registry = registry_of(ctx)

    def load(session: Any) -> tuple[str, list[Any]]:
        row = get_stream(session, caller.tenant_id, stream_id)
        return row.lang, selected_products(session, row.tenant_id, row.product_ids)

    lang, products = await ctx.read(load)
    existing = registry.streams.get(stream_id)
    limit = ctx.settings.chat_sources.max_sources_per_stream
    if existing is not None and len(existing.sources) >= limit:
        raise ProblemError(409, f"the stream has {limit} chat sources already", kind="conflict")
    chat = registry.stream(stream_id, caller.tenant_id, lang, products)
    config = body.model_dump()
    token = config.get("token")
    config["token"] = token.get_secret_value() if token is not None else ""
    return _public(registry.add(chat, config))


@router.get(
    "/v1/streams/{stream_id}/chat-sources",
    response_model=list[ChatSourcePublic],
    responses=problem_responses(404),
)
async def list_sources(
    stream_id: StreamIdPath, caller: ReaderDep, ctx: ContextDep
) -> list[ChatSourcePublic]:
    await ctx.read(lambda s: get_stream(s, caller.tenant_id, stream_id))
    chat = registry_of(ctx).streams.get(stream_id)
    return [_public(s) for s in chat.sources.values()] if chat is not None else []


@router.delete(
    "/v1/streams/{stream_id}/chat-sources/{source_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404),
)
async def remove_source(
    stream_id: StreamIdPath, source_id: SourceIdPath, caller: OperatorDep, ctx: ContextDep
) -> Response:
    registry = registry_of(ctx)
    registry.remove(_chat_of(registry, caller.tenant_id, stream_id), source_id)
    return Response(status_code=204)


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
    responses=problem_responses(401, 404, 409, 413, 422),
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
    fates = registry.deliver_webhook(source, chat, inbound)
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
