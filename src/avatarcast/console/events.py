"""One Server-Sent Events connection per console tab: everything the tab shows, live.

Named events: ``line`` (a spoken sentence), ``refusal``, ``event``, ``alert``, ``chat``
(fates), ``chat_blocked``, ``answers`` (the whole approval queue, pushed by the worker when it
changes), ``health`` (a stream's state, when it changed) and ``signout``
(the session or its key ended). Numbered events resume after ``Last-Event-ID``; ``health`` is
a state, sent again in full on every (re)connection, so it has no id. The session and its key
are checked twice a second, so a revoked key ends the tab's session within the key cache bound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent

from avatarcast.console import views
from avatarcast.console.auth import SignedDep, console_of, cookie_name, key_record
from avatarcast.console.bus import BusEvent
from avatarcast.control.context import AppContext

router = APIRouter(prefix="/console", include_in_schema=False)

CHECK_S = 0.5
HEALTH_S = 1.0


@router.get("/events")
async def events(
    request: Request,
    signed: SignedDep,
    streams: Annotated[str, Query(max_length=2000)] = "",
    after: Annotated[int, Query(ge=0)] = 0,
) -> EventSourceResponse:
    header = request.headers.get("last-event-id", "")
    last = int(header) if header.isdigit() else after
    wanted = frozenset(s for s in streams.split(",") if s)
    session_id = request.cookies.get(cookie_name(request), "")
    return EventSourceResponse(
        _stream(request, signed.caller.tenant_id, session_id, wanted, last), ping=15
    )


async def _stream(
    request: Request, tenant_id: str, session_id: str, wanted: frozenset[str], last: int
) -> AsyncIterator[ServerSentEvent]:
    console = console_of(request)
    ctx = console.ctx
    shown: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    next_health = 0.0
    while True:
        if not await _still_signed(request, session_id):
            yield ServerSentEvent(event="signout", data="the session ended")
            return
        for event in console.bus.after(tenant_id, last):
            last = event.id
            if not wanted or event.stream_id in wanted:
                yield _sse(event)
        if loop.time() >= next_health:
            next_health = loop.time() + HEALTH_S
            for health in await _health(ctx, tenant_id, wanted):
                text = json.dumps(health, separators=(",", ":"), default=str)
                if shown.get(health["id"]) != text:
                    shown[health["id"]] = text
                    yield ServerSentEvent(event="health", data=text)
        await console.bus.wait(CHECK_S)


def _sse(event: BusEvent) -> ServerSentEvent:
    data = {"stream_id": event.stream_id, **event.data}
    return ServerSentEvent(
        id=str(event.id),
        event=event.name,
        data=json.dumps(data, separators=(",", ":"), default=str),
    )


async def _still_signed(request: Request, session_id: str) -> bool:
    console = console_of(request)
    sessions = console.sessions
    session = await run_in_threadpool(partial(sessions.get, session_id, touch=False))
    if session is None:
        return False
    record = await key_record(console.ctx, session.key_id)
    if record is None or record.revoked:
        await run_in_threadpool(sessions.close, session_id)
        return False
    return True


async def _health(ctx: AppContext, tenant_id: str, wanted: frozenset[str]) -> list[dict[str, Any]]:
    def read(db: Any) -> list[dict[str, Any]]:
        names = views.supervisor_names(db, tenant_id)
        rows = views.stream_rows(db, tenant_id)
        return [views.health(ctx, r, names) for r in rows if not wanted or r.id in wanted]

    return await ctx.read(read)
