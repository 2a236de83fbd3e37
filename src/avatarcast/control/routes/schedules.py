"""Schedules: weekly windows in a named timezone that start and stop a stream.

Operators and admins manage them; the :class:`~avatarcast.control.scheduler.Scheduler` ticks
with the app (see ``control/scheduler.py`` for daylight-saving rules).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.control.auditing import audit
from avatarcast.control.context import AppContext
from avatarcast.control.deps import ContextDep, OperatorDep, SessionDep
from avatarcast.control.leader import LEADERSHIP_KEY, Leadership, replica_id
from avatarcast.control.manager import StreamManager
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.quotas import check_quota
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.scheduler import Scheduler, WeeklyWindow, load_zone
from avatarcast.control.schemas.streams import (
    WEEKDAYS,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    Window,
)
from avatarcast.control.streaming import EXTRAS_KEY
from avatarcast.db.base import utcnow
from avatarcast.db.models_streams import ScheduleRow

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=AUTH_PROBLEMS)
NOT_FOUND = problem_responses(404)
ScheduleIdPath = Annotated[str, Path(max_length=64)]
log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Tick the scheduler while the app runs (after the streams' lifespan restored them)."""
    manager: StreamManager | None = ctx.extras.get(EXTRAS_KEY)
    if manager is None:
        yield
        return
    section = ctx.settings.scheduler
    offset = timedelta(seconds=section.clock_offset_s)
    if offset:
        log.warning("scheduler: clock shifted by %s s (scheduler.clock_offset_s)", offset)
    scheduler = Scheduler(
        ctx.sessions,
        manager.reconcile,
        live_limit=ctx.settings.quotas.live_streams,
        now=lambda: utcnow() + offset,
    )
    replica = manager.leases.replica if manager.leases is not None else replica_id()
    leadership = Leadership(ctx.engine, replica=replica)
    ctx.extras["scheduler"] = scheduler
    ctx.extras[LEADERSHIP_KEY] = leadership
    async with asyncio.TaskGroup() as tg:
        ticker = tg.create_task(scheduler.run(section.tick_s, leadership=leadership))
        try:
            yield
        finally:
            ticker.cancel()


def _detail(row: ScheduleRow) -> dict[str, object]:
    """What an audit entry keeps of a schedule: enough to tell what ran when."""
    return {
        "schedule_id": row.id,
        "name": row.name,
        "timezone": row.timezone,
        "days": [WEEKDAYS[d] for d in sorted(row.days)],
        "start": row.start_time,
        "end": row.end_time,
        "enabled": row.enabled,
    }


def _public(row: ScheduleRow) -> SchedulePublic:
    try:
        window = WeeklyWindow.of(row).next_at(utcnow())
    except ValueError:
        window = None
    return SchedulePublic(
        id=row.id,
        stream_id=row.stream_id,
        name=row.name,
        timezone=row.timezone,
        days=[WEEKDAYS[d] for d in sorted(row.days)],
        start=row.start_time,
        end=row.end_time,
        enabled=row.enabled,
        next_window=Window(starts_at=window.starts_at, ends_at=window.ends_at) if window else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_timezone(name: str) -> None:
    try:
        load_zone(name)
    except ValueError as e:
        error = {"field": "body.timezone", "message": str(e), "type": "value"}
        raise validation_problem([error]) from None


def _get(session: Session, tenant_id: str, schedule_id: str) -> ScheduleRow:
    row = session.get(ScheduleRow, schedule_id)
    if row is None or row.tenant_id != tenant_id:
        raise ProblemError(404, f"no schedule {schedule_id!r}", kind="not-found")
    return row


@router.get("", response_model=list[SchedulePublic])
def list_schedules(session: SessionDep, caller: OperatorDep) -> list[SchedulePublic]:
    rows = session.scalars(
        select(ScheduleRow)
        .where(ScheduleRow.tenant_id == caller.tenant_id)
        .order_by(ScheduleRow.created_at, ScheduleRow.id)
    )
    return [_public(r) for r in rows]


@router.post(
    "", status_code=201, response_model=SchedulePublic, responses=problem_responses(404, 409)
)
def create_schedule(
    body: ScheduleCreate, session: SessionDep, caller: OperatorDep, ctx: ContextDep
) -> SchedulePublic:
    _check_timezone(body.timezone)
    get_stream(session, caller.tenant_id, body.stream_id)
    check_quota(session, ctx.settings.quotas, "schedules", caller.tenant_id)
    now = utcnow()
    row = ScheduleRow(
        id=secrets.token_hex(8),
        tenant_id=caller.tenant_id,
        stream_id=body.stream_id,
        name=body.name,
        timezone=body.timezone,
        days=sorted({WEEKDAYS.index(d) for d in body.days}),
        start_time=body.start,
        end_time=body.end,
        enabled=body.enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    audit(session, caller, kind="schedule_created", stream_id=row.stream_id, detail=_detail(row))
    session.commit()
    return _public(row)


@router.get("/{schedule_id}", response_model=SchedulePublic, responses=NOT_FOUND)
def get_schedule(
    schedule_id: ScheduleIdPath, session: SessionDep, caller: OperatorDep
) -> SchedulePublic:
    return _public(_get(session, caller.tenant_id, schedule_id))


@router.patch("/{schedule_id}", response_model=SchedulePublic, responses=NOT_FOUND)
def update_schedule(
    schedule_id: ScheduleIdPath, body: ScheduleUpdate, session: SessionDep, caller: OperatorDep
) -> SchedulePublic:
    """Change a schedule; a window already opened keeps the end it had when it opened."""
    row = _get(session, caller.tenant_id, schedule_id)
    if body.timezone is not None:
        _check_timezone(body.timezone)
        row.timezone = body.timezone
    if body.name is not None:
        row.name = body.name
    if body.days is not None:
        row.days = sorted({WEEKDAYS.index(d) for d in body.days})
    if body.start is not None:
        row.start_time = body.start
    if body.end is not None:
        row.end_time = body.end
    if body.enabled is not None:
        row.enabled = body.enabled
    if row.start_time == row.end_time:
        error = {"field": "body", "message": "start and end must differ", "type": "value"}
        raise validation_problem([error])
    row.updated_at = utcnow()
    audit(session, caller, kind="schedule_updated", stream_id=row.stream_id, detail=_detail(row))
    session.commit()
    return _public(row)


@router.delete("/{schedule_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_schedule(
    schedule_id: ScheduleIdPath, session: SessionDep, caller: OperatorDep
) -> Response:
    """Delete the schedule; a stream it started keeps running until stopped."""
    row = _get(session, caller.tenant_id, schedule_id)
    audit(session, caller, kind="schedule_deleted", stream_id=row.stream_id, detail=_detail(row))
    session.delete(row)
    session.commit()
    return Response(status_code=204)
