"""A human supervisor on a stream: duty, heartbeats, and actions on what goes on air.

A supervisor key linked to a supervisor record goes on duty and sends heartbeats; a stream
cannot start without someone on duty. When heartbeats lapse the stream shows the safe-mode
slate, and stops if they stay away (``SupervisionWatch``). A supervisor (a key linked to a
supervisor record) may correct (``say``), unmute, skip or hold products and decide answers;
an operator key alone may only make a stream safer: kill and mute. Every action lands in the
audit log (OWASP API5:2023, function-level authorization).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Path
from sqlalchemy.orm import Session

from avatarcast.commands import (
    Command,
    InjectFault,
    Mute,
    SafeMode,
    Say,
    Unmute,
    command_to_wire,
    parse_command,
)
from avatarcast.control.auditing import audit
from avatarcast.control.context import AppContext
from avatarcast.control.deps import Caller, ContextDep, SessionDep, StaffDep, SupervisorDep
from avatarcast.control.problems import ProblemError, problem_responses
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.routes.supervisors import find as find_supervisor
from avatarcast.control.schemas.supervision import (
    ActionResult,
    DutyCreate,
    DutyPublic,
    FaultCreate,
    PendingAnswer,
    SayCreate,
)
from avatarcast.control.streaming import manager_of
from avatarcast.db.base import utcnow
from avatarcast.db.events import record_event
from avatarcast.db.models_streams import StreamRow
from avatarcast.runner.base import CommandFailed

router = APIRouter(prefix="/v1/streams", tags=["supervision"], responses=AUTH_PROBLEMS)
ACTION = problem_responses(404, 409)
StreamIdPath = Annotated[str, Path(max_length=64)]
ProductIdPath = Annotated[str, Path(max_length=64)]
AnswerIdPath = Annotated[str, Path(max_length=32)]


def _me(caller: Caller) -> str:
    if caller.supervisor_id is None:
        raise ProblemError(
            403, "this needs a supervisor key linked to a supervisor record", kind="forbidden"
        )
    return caller.supervisor_id


def _duty(row: StreamRow, ctx: AppContext) -> DutyPublic:
    manager = ctx.extras.get("streams")
    watch = manager.watch if manager is not None else None
    return DutyPublic(
        stream_id=row.id,
        supervisor_id=row.duty_supervisor_id,
        since=row.duty_since,
        heartbeat_at=row.heartbeat_at,
        timeout_s=ctx.settings.supervision.heartbeat_timeout_s,
        safe_mode=watch is not None and watch.in_safe_mode(row.id),
    )


@router.post("/{stream_id}/supervisor/duty", response_model=DutyPublic, responses=ACTION)
def go_on_duty(
    stream_id: StreamIdPath,
    body: DutyCreate,
    session: SessionDep,
    caller: SupervisorDep,
    ctx: ContextDep,
) -> DutyPublic:
    """Take over the stream as its supervisor on duty (the previous one hands over)."""
    if _me(caller) != body.supervisor_id:
        raise ProblemError(403, "a key can only put its own supervisor on duty", kind="forbidden")
    find_supervisor(session, caller.tenant_id, body.supervisor_id)
    row = get_stream(session, caller.tenant_id, stream_id)
    previous, now = row.duty_supervisor_id, utcnow()
    row.duty_supervisor_id, row.duty_since, row.heartbeat_at = body.supervisor_id, now, now
    audit(
        session, caller, kind="supervisor_on_duty", stream_id=row.id, detail={"previous": previous}
    )
    session.commit()
    _beat(ctx, session, caller, row)
    _start_held(ctx, row)
    return _duty(row, ctx)


def _start_held(ctx: AppContext, row: StreamRow) -> None:
    """A stream held for want of a supervisor (restored, or a schedule window) goes on air
    now: reconcile a stream meant to be live, and let the scheduler retry its windows."""
    manager = ctx.extras.get("streams")
    if manager is None:
        return
    if row.desired_state != "stopped" and row.id not in manager.runner.running():
        anyio.from_thread.run(manager.reconcile, row.id)
    scheduler = ctx.extras.get("scheduler")
    if scheduler is not None:
        anyio.from_thread.run(scheduler.tick)


@router.delete("/{stream_id}/supervisor/duty", response_model=DutyPublic, responses=ACTION)
def go_off_duty(
    stream_id: StreamIdPath, session: SessionDep, caller: SupervisorDep, ctx: ContextDep
) -> DutyPublic:
    """Leave duty. A stream on air without heartbeats goes to safe mode, then stops."""
    row = get_stream(session, caller.tenant_id, stream_id)
    if row.duty_supervisor_id is None or row.duty_supervisor_id != _me(caller):
        raise ProblemError(409, "this supervisor is not on duty here", kind="not-on-duty")
    row.duty_supervisor_id = row.duty_since = None
    audit(session, caller, kind="supervisor_off_duty", stream_id=row.id)
    session.commit()
    return _duty(row, ctx)


@router.post("/{stream_id}/supervisor/heartbeat", response_model=DutyPublic, responses=ACTION)
def heartbeat(
    stream_id: StreamIdPath, session: SessionDep, caller: SupervisorDep, ctx: ContextDep
) -> DutyPublic:
    """I am watching. Send more often than ``timeout_s``; one during safe mode resumes."""
    row = get_stream(session, caller.tenant_id, stream_id)
    if row.duty_supervisor_id is None or row.duty_supervisor_id != _me(caller):
        raise ProblemError(409, "this supervisor is not on duty here", kind="not-on-duty")
    row.heartbeat_at = utcnow()
    session.commit()
    _beat(ctx, session, caller, row)
    return _duty(row, ctx)


def _beat(ctx: AppContext, session: Session, caller: Caller, row: StreamRow) -> None:
    manager = ctx.extras.get("streams")
    if manager is None or manager.watch is None:
        return
    left = manager.watch.beat(row.id)
    if left is None:
        return
    anyio.from_thread.run(manager.send_command, row.id, SafeMode(on=False))
    detail = {"silent_s": round(left.silent_s, 3)}
    audit(session, caller, kind="safe_mode_left", stream_id=row.id, detail=detail)
    session.commit()


# --- actions on air -------------------------------------------------------------------------


def _on_air(session: Session, caller: Caller, ctx: AppContext, stream_id: str) -> StreamRow:
    row = get_stream(session, caller.tenant_id, stream_id)
    if row.desired_state == "stopped" or stream_id not in manager_of(ctx).runner.running():
        raise ProblemError(409, f"stream {stream_id} is not on air", kind="not-on-air")
    return row


def _command(
    ctx: AppContext,
    session: Session,
    caller: Caller,
    row: StreamRow,
    action: str,
    command: Command,
    detail: dict[str, Any] | None = None,
) -> ActionResult:
    """Send ``command`` and wait until the worker has applied it, then audit the action."""
    runner = manager_of(ctx).runner
    try:
        result = anyio.from_thread.run(runner.request, row.id, command_to_wire(command))
    except CommandFailed as e:
        raise ProblemError(409, f"{action}: {e}", kind="not-on-air") from None
    audit(session, caller, kind=action, stream_id=row.id, detail=detail)
    session.commit()
    return ActionResult(stream_id=row.id, action=action, result=result)


@router.post("/{stream_id}/kill", response_model=ActionResult, responses=ACTION)
def kill(
    stream_id: StreamIdPath, session: SessionDep, caller: StaffDep, ctx: ContextDep
) -> ActionResult:
    """Cut the talk at once and end the stream cleanly; it stays stopped."""
    manager = manager_of(ctx)
    row = _on_air(session, caller, ctx, stream_id)
    state = row.desired_state
    row.desired_state, row.updated_at = "stopped", utcnow()
    detail = {"key_id": caller.key_id, "role": caller.role, "from": state, "to": "stopped"}
    record_event(session, tenant_id=row.tenant_id, stream_id=row.id, kind="kill", detail=detail)
    audit(session, caller, kind="kill", stream_id=row.id, detail={"from": state})
    session.commit()
    anyio.from_thread.run(manager.runner.kill, stream_id)
    anyio.from_thread.run(manager.reconcile, stream_id)
    return ActionResult(stream_id=stream_id, action="kill")


@router.post("/{stream_id}/mute", response_model=ActionResult, responses=ACTION)
def mute(
    stream_id: StreamIdPath, session: SessionDep, caller: StaffDep, ctx: ContextDep
) -> ActionResult:
    row = _on_air(session, caller, ctx, stream_id)
    return _command(ctx, session, caller, row, "mute", Mute())


@router.post("/{stream_id}/unmute", response_model=ActionResult, responses=ACTION)
def unmute(
    stream_id: StreamIdPath, session: SessionDep, caller: SupervisorDep, ctx: ContextDep
) -> ActionResult:
    row = _on_air(session, caller, ctx, stream_id)
    return _command(ctx, session, caller, row, "unmute", Unmute())


@router.post("/{stream_id}/faults", response_model=ActionResult, responses=ACTION)
def inject_fault(
    stream_id: StreamIdPath,
    body: FaultCreate,
    session: SessionDep,
    caller: StaffDep,
    ctx: ContextDep,
) -> ActionResult:
    """Put a glitch on air for ``seconds`` (a drill for the on-air monitors); 404 unless the
    server runs with ``monitors.fault_injection``."""
    if not ctx.settings.monitors.fault_injection:
        raise ProblemError(404, "fault injection is off on this server", kind="not-found")
    row = _on_air(session, caller, ctx, stream_id)
    command = InjectFault(kind=body.kind, seconds=body.seconds, target=body.target)
    return _command(ctx, session, caller, row, "fault", command, body.model_dump())


@router.post("/{stream_id}/say", response_model=ActionResult, responses=ACTION)
def say(
    stream_id: StreamIdPath,
    body: SayCreate,
    session: SessionDep,
    caller: SupervisorDep,
    ctx: ContextDep,
) -> ActionResult:
    """Say ``text`` now, ahead of the rundown: an on-air correction."""
    row = _on_air(session, caller, ctx, stream_id)
    detail = {"text": body.text, "on_air_correction": True}
    return _command(ctx, session, caller, row, "say", Say(text=body.text), detail)


@router.post(
    "/{stream_id}/products/{product_id}/{action}", response_model=ActionResult, responses=ACTION
)
def product_action(
    stream_id: StreamIdPath,
    product_id: ProductIdPath,
    action: Annotated[str, Path(pattern=r"^(skip|pause|resume|pin)$")],
    session: SessionDep,
    caller: SupervisorDep,
    ctx: ContextDep,
) -> ActionResult:
    """``skip``: move on if it is on air; ``pause``: no talk about it; ``resume``: back in;
    ``pin``: feature it now (its card at once, the talk turns to it)."""
    row = _on_air(session, caller, ctx, stream_id)
    command = parse_command({"cmd": f"{action}_product", "product_id": product_id})
    detail = {"product_id": product_id}
    return _command(ctx, session, caller, row, f"product_{action}", command, detail)


# --- answers awaiting approval --------------------------------------------------------------


@router.get("/{stream_id}/answers/pending", response_model=list[PendingAnswer], responses=ACTION)
def pending_answers(
    stream_id: StreamIdPath, session: SessionDep, caller: SupervisorDep, ctx: ContextDep
) -> list[PendingAnswer]:
    row = _on_air(session, caller, ctx, stream_id)
    try:
        items = anyio.from_thread.run(manager_of(ctx).runner.request, row.id, {"cmd": "answers"})
    except CommandFailed as e:
        raise ProblemError(409, str(e), kind="not-on-air") from None
    return [PendingAnswer.model_validate(i) for i in items or ()]


@router.post(
    "/{stream_id}/answers/{answer_id}/{verdict}", response_model=ActionResult, responses=ACTION
)
def decide_answer(
    stream_id: StreamIdPath,
    answer_id: AnswerIdPath,
    verdict: Annotated[str, Path(pattern=r"^(approve|reject)$")],
    session: SessionDep,
    caller: SupervisorDep,
    ctx: ContextDep,
) -> ActionResult:
    row = _on_air(session, caller, ctx, stream_id)
    command = parse_command({"cmd": verdict, "answer_id": answer_id})
    detail = {"answer_id": answer_id}
    kind = "answer_approved" if verdict == "approve" else "answer_rejected"
    return _command(ctx, session, caller, row, kind, command, detail)
