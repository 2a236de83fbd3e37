"""API keys: the secret is shown once at creation; only its HMAC is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from avatarcast.control.auditing import audit
from avatarcast.control.deps import Caller, ContextDep, OperatorDep, SessionDep
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.quotas import check_quota
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.supervisors import find as find_supervisor
from avatarcast.control.schemas.keys import KeyCreate, KeyCreated, KeyPublic
from avatarcast.control.security import SUPERVISOR_LINKABLE, new_key
from avatarcast.db.base import utcnow
from avatarcast.db.models import ApiKey, Tenant

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=AUTH_PROBLEMS)


def _tenant_for(caller: Caller, tenant_id: str | None, session: SessionDep) -> str:
    """Operators act on their own tenant; admins on any, 404 for one that does not exist."""
    if tenant_id is None or tenant_id == caller.tenant_id:
        return caller.tenant_id
    if not caller.is_admin or session.get(Tenant, tenant_id) is None:
        raise ProblemError(404, f"no tenant {tenant_id!r}", kind="not-found")
    return tenant_id


@router.post("", status_code=201, response_model=KeyCreated, responses=problem_responses(404, 409))
def create_key(
    body: KeyCreate, session: SessionDep, caller: OperatorDep, ctx: ContextDep
) -> KeyCreated:
    if body.role == "admin" and not caller.is_admin:
        raise ProblemError(403, "only an admin key can create admin keys", kind="forbidden")
    tenant_id = _tenant_for(caller, body.tenant_id, session)
    if body.supervisor_id is not None:
        if body.role not in SUPERVISOR_LINKABLE:
            raise validation_problem(
                [
                    {
                        "field": "body.supervisor_id",
                        "message": "only for supervisor and operator keys",
                        "type": "value",
                    }
                ]
            )
        find_supervisor(session, tenant_id, body.supervisor_id)
    check_quota(session, ctx.settings.quotas, "keys", tenant_id)
    made = new_key()
    row = ApiKey(
        id=made.id,
        tenant_id=tenant_id,
        name=body.name,
        role=body.role,
        secret_hash=made.secret_hash,
        supervisor_id=body.supervisor_id,
    )
    session.add(row)
    detail = {"new_key_id": row.id, "new_role": row.role, "supervisor_id": row.supervisor_id}
    audit(session, caller, kind="key_created", detail=detail, tenant_id=tenant_id)
    session.commit()
    return KeyCreated(**KeyPublic.model_validate(row).model_dump(), key=made.token)


@router.get("", response_model=list[KeyPublic], responses=problem_responses(404))
def list_keys(
    session: SessionDep,
    caller: OperatorDep,
    tenant_id: Annotated[str | None, Query(max_length=32)] = None,
) -> list[KeyPublic]:
    """Keys of the caller's tenant (an admin may name another), without their secrets."""
    tid = _tenant_for(caller, tenant_id, session)
    rows = session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == tid).order_by(ApiKey.created_at)
    )
    return [KeyPublic.model_validate(r) for r in rows]


@router.delete(
    "/{key_id}", status_code=204, response_class=Response, responses=problem_responses(404)
)
def revoke_key(key_id: str, session: SessionDep, caller: OperatorDep, ctx: ContextDep) -> Response:
    """Revoke at once; revoking twice is harmless. Operators cannot revoke admin keys."""
    row = session.get(ApiKey, key_id)
    if row is None or (row.tenant_id != caller.tenant_id and not caller.is_admin):
        raise ProblemError(404, f"no key {key_id!r}", kind="not-found")
    if row.role == "admin" and not caller.is_admin:
        raise ProblemError(403, "only an admin key can revoke admin keys", kind="forbidden")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        detail = {"revoked_key_id": row.id, "revoked_role": row.role}
        audit(session, caller, kind="key_revoked", detail=detail, tenant_id=row.tenant_id)
        session.commit()
    ctx.buckets.forget(key_id)
    ctx.keys.forget(key_id)
    return Response(status_code=204)
