"""Supervisors: the people who watch streams, with their recorded identity, per tenant.

Operators (and admins) manage them; a supervisor key (or an operator key) is linked to one with
``supervisor_id`` when it is created (``POST /v1/keys``), and then acts as that person.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from sqlalchemy import select

from avatarcast.control.auditing import audit
from avatarcast.control.deps import OperatorDep, SessionDep, StaffDep
from avatarcast.control.problems import ProblemError, problem_responses
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.supervision import SupervisorCreate, SupervisorPublic
from avatarcast.db.models_streams import SupervisorRow

router = APIRouter(prefix="/v1/supervisors", tags=["supervisors"], responses=AUTH_PROBLEMS)


@router.post("", status_code=201, response_model=SupervisorPublic)
def create_supervisor(
    body: SupervisorCreate, session: SessionDep, caller: OperatorDep
) -> SupervisorPublic:
    row = SupervisorRow(
        id=secrets.token_hex(8),
        tenant_id=caller.tenant_id,
        full_name=body.full_name,
        contact=body.contact,
        reference=body.reference,
    )
    session.add(row)
    audit(session, caller, kind="supervisor_created", detail={"supervisor_id": row.id})
    session.commit()
    return SupervisorPublic.model_validate(row)


@router.get("", response_model=list[SupervisorPublic])
def list_supervisors(session: SessionDep, caller: StaffDep) -> list[SupervisorPublic]:
    rows = session.scalars(
        select(SupervisorRow)
        .where(SupervisorRow.tenant_id == caller.tenant_id)
        .order_by(SupervisorRow.created_at, SupervisorRow.id)
    )
    return [SupervisorPublic.model_validate(r) for r in rows]


@router.get("/{supervisor_id}", response_model=SupervisorPublic, responses=problem_responses(404))
def get_supervisor(supervisor_id: str, session: SessionDep, caller: StaffDep) -> SupervisorPublic:
    return SupervisorPublic.model_validate(find(session, caller.tenant_id, supervisor_id))


def find(session: SessionDep, tenant_id: str, supervisor_id: str) -> SupervisorRow:
    row = session.get(SupervisorRow, supervisor_id)
    if row is None or row.tenant_id != tenant_id:
        raise ProblemError(404, f"no supervisor {supervisor_id!r}", kind="not-found")
    return row
