"""The stream page's chat sources panel: each source's health in words, add and remove forms
(the token is write-only), and the chat account (every message's fate, counted).

The forms call the REST route's own functions (``control.routes.chat_sources``) with the
signed-in key as the caller after the same role check (operator), so the console can do
nothing the key could not do through ``/v1``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter, ValidationError

from avatarcast.console.auth import Permit, SignedDep, console_of, may
from avatarcast.console.render import flash, problem_text
from avatarcast.control.chat_edit import update_chat_source
from avatarcast.control.chatting import registry_of
from avatarcast.control.problems import ProblemError
from avatarcast.control.routes.chat_sources import (
    add_chat_source,
    list_chat_sources,
    remove_chat_source,
)
from avatarcast.control.schemas.chat_sources import (
    ChatSourceIn,
    ChatSourcePublic,
    ChatSourceUpdate,
)

router = APIRouter(prefix="/console", include_in_schema=False)
StreamId = Annotated[str, Path(max_length=64)]
SourceId = Annotated[str, Path(max_length=64)]
_source_in: TypeAdapter[Any] = TypeAdapter(ChatSourceIn)
_KINDS = {"twitch": "Twitch", "youtube": "YouTube", "webhook": "Webhook"}
#: The account's parts, in the order of the sum shown under it.
PARTS = (
    ("answered_spoken", "Spoken"),
    ("answered_written", "Written"),
    ("merged", "Merged"),
    ("blocked", "Blocked"),
    ("overflow", "Overflow"),
    ("ignored", "Ignored"),
    ("pending", "Pending"),
)


def health_words(source: ChatSourcePublic) -> str:
    """A source's health as a sentence a person on night shift reads at a glance."""
    h = source.health
    state = h.get("state")
    counts = f"{h.get('received', 0)} received, {h.get('sent', 0)} sent"
    retry = f" in {h['retry_in_s']:.0f} s" if h.get("retry_in_s") is not None else ""
    error = f" ({h['last_error']})" if h.get("last_error") else ""
    if state == "connected":
        first = "Ready for signed posts" if source.kind == "webhook" else "Connected"
        return f"{first}; {counts}."
    if state == "starting":
        return "Connecting…"
    if state == "reconnecting":
        return f"Disconnected, reconnecting{retry}{error}; {counts}."
    if state == "quota_exceeded":
        return f"Paused: the YouTube quota is used up, trying again{retry}; {counts}."
    quota = h.get("quota")
    if isinstance(quota, dict) and state == "connected":
        used = f"quota {quota.get('used')} of {quota.get('budget')} units today"
        return f"Connected; {counts}; {used}."
    if state == "stopped":
        return "Not running: it opens when the stream goes on air."
    if state == "disabled":
        return "Disabled: kept, but not connected until enabled."
    return f"{state}{error}"


def where_words(source: ChatSourcePublic) -> str:
    extra = source.model_extra or {}
    if source.kind == "twitch":
        channel, server = extra.get("channel", ""), extra.get("server", "")
        return f"{channel} on {server} as {extra.get('username', '')}"
    if source.kind == "youtube":
        return f"live chat {extra.get('live_chat_id', '')}"
    return f"posts to {extra.get('url', '')}"


@router.get("/streams/{stream_id}/chat-sources", dependencies=[Depends(Permit("list_sources"))])
async def panel(request: Request, signed: SignedDep, stream_id: StreamId) -> HTMLResponse:
    console = console_of(request)
    ctx, tenant = console.ctx, signed.caller.tenant_id
    error, sources, account = "", [], None
    try:
        sources = await list_chat_sources(ctx, tenant, stream_id)
        chat = registry_of(ctx).streams.get(stream_id)
        if chat is not None and chat.tenant_id == tenant:
            account = chat.intake.snapshot()
    except ProblemError as e:
        error = str(e)
    html = console.env.get_template("_chat_sources.html").render(
        stream_id=stream_id,
        error=error,
        sources=[
            {
                "id": s.id,
                "kind": _KINDS.get(s.kind, s.kind),
                "where": where_words(s),
                "health": health_words(s),
                "state": s.health.get("state", ""),
                "enabled": (s.model_extra or {}).get("enabled", True),
            }
            for s in sources
        ],
        account=account,
        parts=PARTS,
        may_edit=may(signed.caller, "add_source"),
    )
    return HTMLResponse(html)


def _refreshed(response: HTMLResponse) -> HTMLResponse:
    if response.status_code < 400:
        response.headers["HX-Trigger"] = "chatsources"
    return response


@router.post("/streams/{stream_id}/chat-sources", dependencies=[Depends(Permit("add_source"))])
async def add(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    kind: Annotated[str, Form(max_length=16)],
    token: Annotated[str, Form(max_length=2000)] = "",
    server: Annotated[str, Form(max_length=300)] = "",
    channel: Annotated[str, Form(max_length=64)] = "",
    username: Annotated[str, Form(max_length=64)] = "",
    ca_file: Annotated[str, Form(max_length=255)] = "",
    live_chat_id: Annotated[str, Form(max_length=200)] = "",
    reply_url: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse:
    given = {
        "kind": kind,
        "token": token,
        "server": server,
        "channel": channel,
        "username": username,
        "ca_file": ca_file,
        "live_chat_id": live_chat_id,
        "reply_url": reply_url,
    }
    wanted = {
        "twitch": ("server", "channel", "username", "ca_file"),
        "youtube": ("live_chat_id",),
        "webhook": ("reply_url",),
    }.get(kind, ())
    body = {k: v.strip() for k, v in given.items() if v.strip() and k in (*wanted, "kind", "token")}
    ctx = console_of(request).ctx
    try:
        source = await add_chat_source(
            ctx, signed.caller, stream_id, _source_in.validate_python(body)
        )
    except ValidationError as e:
        return flash(request, problem_text(e), ok=False, status=422)
    except ProblemError as e:
        return flash(request, _problem_words(e), ok=False, status=e.status)
    kind_words = _KINDS.get(source.kind, source.kind)
    return _refreshed(flash(request, f"{kind_words} chat source {source.id} added."))


@router.post(
    "/streams/{stream_id}/chat-sources/{source_id}/remove",
    dependencies=[Depends(Permit("remove_source"))],
)
async def remove(
    request: Request, signed: SignedDep, stream_id: StreamId, source_id: SourceId
) -> HTMLResponse:
    try:
        await remove_chat_source(console_of(request).ctx, signed.caller, stream_id, source_id)
    except ProblemError as e:
        return flash(request, _problem_words(e), ok=False, status=e.status)
    return _refreshed(flash(request, f"Chat source {source_id} removed."))


@router.post(
    "/streams/{stream_id}/chat-sources/edit", dependencies=[Depends(Permit("update_source"))]
)
async def edit(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    source_id: Annotated[str, Form(max_length=64)],
    token: Annotated[str, Form(max_length=2000)] = "",
    channel: Annotated[str, Form(max_length=64)] = "",
    username: Annotated[str, Form(max_length=64)] = "",
    live_chat_id: Annotated[str, Form(max_length=200)] = "",
    reply_url: Annotated[str, Form(max_length=1000)] = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> HTMLResponse:
    """The change form: empty fields stay as they are; the token is write-only."""
    given = {
        "token": token,
        "channel": channel,
        "username": username,
        "live_chat_id": live_chat_id,
        "reply_url": reply_url,
    }
    body: dict[str, Any] = {k: v.strip() for k, v in given.items() if v.strip()}
    if enabled in ("on", "off"):
        body["enabled"] = enabled == "on"
    if not body:
        return flash(
            request, "Nothing to change: every field was left empty.", ok=False, status=422
        )
    return await _update(request, signed, stream_id, source_id.strip(), body)


@router.post(
    "/streams/{stream_id}/chat-sources/{source_id}/enabled",
    dependencies=[Depends(Permit("update_source"))],
)
async def set_enabled(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    source_id: SourceId,
    enabled: Annotated[bool, Form()],
) -> HTMLResponse:
    return await _update(request, signed, stream_id, source_id, {"enabled": enabled})


async def _update(
    request: Request, signed: SignedDep, stream_id: str, source_id: str, body: dict[str, Any]
) -> HTMLResponse:
    try:
        change = ChatSourceUpdate.model_validate(body)
        _, changed = await update_chat_source(
            console_of(request).ctx, signed.caller, stream_id, source_id, change
        )
    except ValidationError as e:
        return flash(request, problem_text(e), ok=False, status=422)
    except ProblemError as e:
        return flash(request, _problem_words(e), ok=False, status=e.status)
    fields = ", ".join(sorted(changed)) or "nothing"
    return _refreshed(flash(request, f"Chat source {source_id} changed: {fields}."))


def _problem_words(error: ProblemError) -> str:
    """The field errors of a 422 (what and where), else the problem's detail."""
    errors = error.extensions.get("errors") or []
    if errors:
        return "; ".join(f"{e['field'].removeprefix('body.')}: {e['message']}" for e in errors)
    return str(error)
