"""Streams: create, list, start/stop/pause/resume, live status; the runner starts with the app.

The runner itself (its lifespan, :func:`manager_of`) is in :mod:`avatarcast.control.streaming`;
its ``lifespan`` is exported here so the app factory starts it with this router.

Roles: operators (and admins) manage streams; a backend key may start and stop; a supervisor
may pause, resume and stop. Actions change ``desired_state`` first, then the runner follows, so
a stream that should be live is live again after a restart. A route never waits on a worker.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import anyio.from_thread
from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarcast.commands import ApproveAnswers, LabelChanged
from avatarcast.control import permissions
from avatarcast.control.auditing import audit
from avatarcast.control.chatting import drop_stream_chat
from avatarcast.control.context import AppContext
from avatarcast.control.deps import (
    Caller,
    ContextDep,
    OperatorDep,
    ReaderDep,
    RoleCheck,
    SessionDep,
    WriterDep,
)
from avatarcast.control.manager import selected_products
from avatarcast.control.pagination import CursorQuery, LimitQuery
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.quotas import live_streams, quota_problem
from avatarcast.control.responses import model_response
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.stream_hls import hls_public
from avatarcast.control.schemas.streams import (
    LabelConfigIn,
    StreamCreate,
    StreamPage,
    StreamPublic,
    StreamUpdate,
)
from avatarcast.control.streaming import health_of, manager_of, tell_stream, without_paths
from avatarcast.db.base import utcnow
from avatarcast.db.events import record_event
from avatarcast.db.models import Destination
from avatarcast.db.models_streams import StreamRow
from avatarcast.errors import ConfigError
from avatarcast.pipeline.spec import Names, resolve_mouth, resolve_names

router = APIRouter(prefix="/v1/streams", tags=["streams"], responses=AUTH_PROBLEMS)
NOT_FOUND = problem_responses(404)
ACTION = problem_responses(404, 409)
StreamIdPath = Annotated[str, Path(max_length=64)]
StopperDep = Annotated[Caller, Depends(RoleCheck(permissions.STOPPER))]
PauserDep = Annotated[Caller, Depends(RoleCheck(permissions.STAFF))]

#: action -> (desired states it may leave, the desired state it sets)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"stopped"}), "live"),
    "stop": (frozenset({"live", "paused"}), "stopped"),
    "pause": (frozenset({"live"}), "paused"),
    "resume": (frozenset({"paused"}), "live"),
}


def get_stream(session: Session, tenant_id: str, stream_id: str) -> StreamRow:
    row = session.get(StreamRow, stream_id)
    if row is None or row.tenant_id != tenant_id:
        raise ProblemError(404, f"no stream {stream_id!r}", kind="not-found")
    return row


def public(row: StreamRow, ctx: AppContext, caller: Caller) -> StreamPublic:
    base = f"/v1/streams/{row.id}"
    return StreamPublic(
        id=row.id,
        name=row.name,
        product_ids=row.product_ids,
        avatar=row.avatar,
        voice=row.voice,
        lang=row.lang,
        writer=row.writer,
        destination_ids=list(row.destination_ids),
        record=row.record,
        label=LabelConfigIn.model_validate(row.label or {}),
        approve_answers=row.approve_answers,
        size=row.size,
        preset=row.preset or "none",
        mouth_engine=row.mouth_engine,
        mouth_model=row.mouth_model,
        supervisor_on_duty=row.duty_supervisor_id,
        desired_state=row.desired_state,
        status=health_of(ctx, row.id),
        whep_url=f"{base}/whep",
        player_url=f"{base}/player",
        whep_token=row.whep_token if may_watch(caller) else None,
        **hls_public(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def may_watch(caller: Caller) -> bool:
    """Who gets the stream's viewer token: operators and admins, and supervisor keys linked to
    a supervisor record (any stream of their tenant, which they may go on duty for)."""
    return caller.role in ("admin", "operator") or caller.supervisor_id is not None


def _field_error(field: str, message: str) -> ProblemError:
    return validation_problem([{"field": field, "message": message, "type": "value"}])


def _names(body: StreamCreate, ctx: AppContext) -> Names:
    """Language, avatar, voice, size and preset checked; 422 names the field."""
    defaults = ctx.settings.stream
    try:
        return resolve_names(
            lang=body.lang or defaults.lang,
            avatar=body.avatar or defaults.avatar,
            voice=body.voice or defaults.voice,
            size=body.size,
            preset=body.preset,
        )
    except ConfigError as e:
        raise _field_error(f"body.{e.field or 'lang'}", str(e)) from None


def _check_mouth(body: StreamCreate, avatar: str) -> None:
    """The twin's mouth engine and model exist and match their hashes; 422 names the field."""
    try:
        resolve_mouth(avatar, body.mouth_engine, body.mouth_model)
    except ConfigError as e:
        field = e.field if e.field in ("mouth_engine", "mouth_model") else "avatar"
        raise _field_error(f"body.{field}", without_paths(str(e)) or str(e)) from None


def check_label(ctx: AppContext, label: LabelConfigIn | None, stream_lang: str) -> None:
    """A reworded AI label must still say AI in its language (configs/ai-disclosure.toml)."""
    if label is None or label.text is None:
        return
    lang = label.lang or stream_lang
    if not ctx.disclosure.discloses(label.text, lang):
        terms = ", ".join(repr(t) for t in ctx.disclosure.terms_for(lang))
        raise _field_error(
            "body.label.text",
            f"the AI label must disclose AI: include one of {terms} (language {lang!r})",
        )


def _check_destinations(session: Session, tenant_id: str, ids: list[str]) -> None:
    found = set(
        session.scalars(
            select(Destination.id).where(
                Destination.tenant_id == tenant_id, Destination.id.in_(ids)
            )
        )
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise _field_error("body.destination_ids", f"no destinations {missing}")


@router.get("", response_model=StreamPage)
def list_streams(
    session: SessionDep,
    caller: ReaderDep,
    ctx: ContextDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> StreamPage:
    """Streams by creation; the cursor is an offset."""
    offset = int(cursor) if cursor else 0
    query = select(StreamRow).where(StreamRow.tenant_id == caller.tenant_id)
    rows = list(
        session.scalars(
            query.order_by(StreamRow.created_at, StreamRow.id).offset(offset).limit(limit + 1)
        )
    )
    return StreamPage(
        items=[public(r, ctx, caller) for r in rows[:limit]],
        next_cursor=str(offset + limit) if len(rows) > limit else None,
    )


@router.post("", status_code=201, response_model=StreamPublic, responses=problem_responses(409))
def create_stream(
    body: StreamCreate, session: SessionDep, caller: OperatorDep, ctx: ContextDep
) -> StreamPublic:
    names = _names(body, ctx)
    _check_mouth(body, names.avatar)
    check_label(ctx, body.label, names.lang)
    if body.writer == "llm" and not (ctx.settings.llm.base_url and ctx.settings.llm.model):
        raise _field_error(
            "body.writer",
            "writer 'llm' needs a model endpoint: set llm.base_url and llm.model "
            "(AVATARCAST_LLM__BASE_URL, AVATARCAST_LLM__MODEL)",
        )
    _check_destinations(session, caller.tenant_id, body.destination_ids)
    taken = select(StreamRow.id).where(
        StreamRow.tenant_id == caller.tenant_id, StreamRow.name == body.name
    )
    conflict = ProblemError(409, f"a stream named {body.name!r} exists", kind="conflict")
    if session.scalar(taken) is not None:
        raise conflict
    now = utcnow()
    row = StreamRow(
        id=secrets.token_hex(8),
        tenant_id=caller.tenant_id,
        name=body.name,
        product_ids=body.product_ids,
        avatar=names.avatar,
        voice=names.voice,
        lang=names.lang,
        writer=body.writer,
        destination_ids=list(dict.fromkeys(body.destination_ids)),
        record=body.record,
        label=body.label.model_dump(exclude_none=True) if body.label else None,
        approve_answers=body.approve_answers,
        size=body.size,
        preset=body.preset,
        hls=body.hls.model_dump() if body.hls is not None else None,
        mouth_engine=body.mouth_engine,
        mouth_model=body.mouth_model,
        desired_state="stopped",
        whep_token=secrets.token_urlsafe(24),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    record_event(
        session, tenant_id=caller.tenant_id, stream_id=row.id, kind="created", detail=_by(caller)
    )
    audit(session, caller, kind="stream_created", stream_id=row.id, detail={"name": row.name})
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise conflict from None
    return public(row, ctx, caller)


@router.get("/{stream_id}", response_model=StreamPublic, responses=NOT_FOUND)
async def get_stream_route(stream_id: StreamIdPath, caller: ReaderDep, ctx: ContextDep) -> Response:
    """The stream with its live health: state, uptime, fps, A/V offset, destinations."""
    row = await ctx.read(lambda session: get_stream(session, caller.tenant_id, stream_id))
    return model_response(public(row, ctx, caller))


@router.delete("/{stream_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_stream(
    stream_id: StreamIdPath, session: SessionDep, caller: OperatorDep, ctx: ContextDep
) -> Response:
    """Stop the stream if it runs, then delete it with its schedules (its events stay)."""
    manager = manager_of(ctx)
    row = get_stream(session, caller.tenant_id, stream_id)
    session.delete(row)
    record_event(
        session, tenant_id=caller.tenant_id, stream_id=stream_id, kind="deleted", detail=_by(caller)
    )
    audit(session, caller, kind="stream_deleted", stream_id=stream_id)
    session.commit()
    anyio.from_thread.run(manager.reconcile, stream_id)
    anyio.from_thread.run(drop_stream_chat, ctx, stream_id)
    return Response(status_code=204)


def _by(caller: Caller) -> dict[str, str]:
    return {"key_id": caller.key_id, "role": caller.role}


def _act(
    action: str, stream_id: str, session: Session, caller: Caller, ctx: AppContext
) -> StreamPublic:
    manager = manager_of(ctx)
    row = get_stream(session, caller.tenant_id, stream_id)
    allowed, target = TRANSITIONS[action]
    state = row.desired_state
    stalled = stream_id not in manager.runner.running()
    if state not in allowed and not (action == "start" and state != "stopped" and stalled):
        raise ProblemError(
            409, f"cannot {action} a stream that is {state}", kind="illegal-transition"
        )
    if target != "stopped" and not selected_products(session, row.tenant_id, row.product_ids):
        raise ProblemError(409, "the stream has no products to present", kind="no-products")
    if action == "start" and state == "stopped":
        limit = ctx.settings.quotas.live_streams
        have = live_streams(session, row.tenant_id, besides=row.id)
        if have >= limit:
            raise quota_problem("live streams", limit, have, "live_streams")
    if action == "start" and row.duty_supervisor_id is None:
        raise ProblemError(
            409,
            "no supervisor is on duty for this stream: a supervisor must go on duty "
            f"(POST /v1/streams/{stream_id}/supervisor/duty) before it can start",
            kind="no-supervisor",
        )
    row.desired_state, row.updated_at = target, utcnow()
    detail = {**_by(caller), "from": state, "to": target}
    record_event(session, tenant_id=row.tenant_id, stream_id=row.id, kind=action, detail=detail)
    audit(
        session,
        caller,
        kind=f"stream_{action}",
        stream_id=row.id,
        detail={"from": state, "to": target, "supervisor_on_duty": row.duty_supervisor_id},
    )
    session.commit()
    anyio.from_thread.run(manager.reconcile, stream_id)
    return public(row, ctx, caller)


@router.post("/{stream_id}/start", response_model=StreamPublic, responses=ACTION)
def start_stream(
    stream_id: StreamIdPath, session: SessionDep, caller: WriterDep, ctx: ContextDep
) -> StreamPublic:
    """Go live. Also brings back a stream meant to be live whose worker failed."""
    return _act("start", stream_id, session, caller, ctx)


@router.post("/{stream_id}/stop", response_model=StreamPublic, responses=ACTION)
def stop_stream(
    stream_id: StreamIdPath, session: SessionDep, caller: StopperDep, ctx: ContextDep
) -> StreamPublic:
    """Stop a live or paused stream; a stopped stream is not restarted."""
    return _act("stop", stream_id, session, caller, ctx)


@router.post("/{stream_id}/pause", response_model=StreamPublic, responses=ACTION)
def pause_stream(
    stream_id: StreamIdPath, session: SessionDep, caller: PauserDep, ctx: ContextDep
) -> StreamPublic:
    """Hold the talk: the avatar idles and the stream stays on air."""
    return _act("pause", stream_id, session, caller, ctx)


@router.post("/{stream_id}/resume", response_model=StreamPublic, responses=ACTION)
def resume_stream(
    stream_id: StreamIdPath, session: SessionDep, caller: PauserDep, ctx: ContextDep
) -> StreamPublic:
    return _act("resume", stream_id, session, caller, ctx)


@router.patch("/{stream_id}", response_model=StreamPublic, responses=NOT_FOUND)
def update_stream(
    stream_id: StreamIdPath,
    body: StreamUpdate,
    session: SessionDep,
    caller: OperatorDep,
    ctx: ContextDep,
) -> StreamPublic:
    """Change the label's wording or place, or approval of answers; a running stream shows
    the change from its next frame."""
    row = get_stream(session, caller.tenant_id, stream_id)
    check_label(ctx, body.label, row.lang)
    changed = body.model_dump(mode="json", exclude_unset=True)
    if body.label is not None:
        row.label = body.label.model_dump(exclude_none=True)
    if body.approve_answers is not None:
        row.approve_answers = body.approve_answers
    row.updated_at = utcnow()
    audit(session, caller, kind="stream_updated", stream_id=row.id, detail=changed)
    session.commit()
    if body.approve_answers is not None:
        tell_stream(ctx, stream_id, ApproveAnswers(on=body.approve_answers))
    if body.label is not None:
        label = body.label
        tell_stream(
            ctx, stream_id, LabelChanged(text=label.text, position=label.position, lang=label.lang)
        )
    return public(row, ctx, caller)
