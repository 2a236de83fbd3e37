"""Tenants: admin keys only."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from avatarcast.control.db.models import Tenant
from avatarcast.control.deps import AdminDep, SessionDep
from avatarcast.control.pagination import CursorQuery, LimitQuery
from avatarcast.control.problems import ProblemError, problem_responses
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.tenants import TenantCreate, TenantPage, TenantPublic

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=AUTH_PROBLEMS)


def _get(session: SessionDep, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise ProblemError(404, f"no tenant {tenant_id!r}", kind="not-found")
    return tenant


@router.get("", response_model=TenantPage)
def list_tenants(
    session: SessionDep, _: AdminDep, cursor: CursorQuery = None, limit: LimitQuery = 100
) -> TenantPage:
    """Tenants by name. The cursor is an offset here: there are few tenants."""
    offset = int(cursor) if cursor else 0
    rows = session.scalars(select(Tenant).order_by(Tenant.name).offset(offset).limit(limit + 1))
    items = list(rows)
    more = len(items) > limit
    return TenantPage(
        items=[TenantPublic.model_validate(t) for t in items[:limit]],
        next_cursor=str(offset + limit) if more else None,
    )


@router.post("", status_code=201, response_model=TenantPublic, responses=problem_responses(409))
def create_tenant(body: TenantCreate, session: SessionDep, _: AdminDep) -> TenantPublic:
    if session.scalar(select(Tenant.id).where(Tenant.name == body.name)) is not None:
        raise ProblemError(409, f"a tenant named {body.name!r} exists", kind="conflict")
    tenant = Tenant(id=secrets.token_hex(8), name=body.name)
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ProblemError(409, f"a tenant named {body.name!r} exists", kind="conflict") from None
    return TenantPublic.model_validate(tenant)


@router.get("/{tenant_id}", response_model=TenantPublic, responses=problem_responses(404))
def get_tenant(tenant_id: str, session: SessionDep, _: AdminDep) -> TenantPublic:
    return TenantPublic.model_validate(_get(session, tenant_id))


@router.delete(
    "/{tenant_id}", status_code=204, response_class=Response, responses=problem_responses(404, 409)
)
def delete_tenant(tenant_id: str, session: SessionDep, caller: AdminDep) -> Response:
    """Delete a tenant with its keys, products, destinations and events."""
    tenant = _get(session, tenant_id)
    if tenant.id == caller.tenant_id:
        raise ProblemError(409, "an admin cannot delete its own tenant", kind="conflict")
    session.delete(tenant)
    session.commit()
    return Response(status_code=204)
