"""Tenants: admin keys only. A tenant's seller is also set by its operators (``tenant_seller``)."""

from __future__ import annotations

import secrets

import anyio.from_thread
from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarcast.control.auditing import audit
from avatarcast.control.context import AppContext
from avatarcast.control.deps import AdminDep, Caller, ContextDep, SessionDep
from avatarcast.control.pagination import CursorQuery, LimitQuery
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.tenants import (
    TenantCreate,
    TenantPage,
    TenantPublic,
    TenantUpdate,
)
from avatarcast.control.streaming import EXTRAS_KEY, tell_tenant_seller
from avatarcast.db.models import Tenant
from avatarcast.db.models_streams import StreamRow

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=AUTH_PROBLEMS)


def _get(session: SessionDep, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise ProblemError(404, f"no tenant {tenant_id!r}", kind="not-found")
    return tenant


def set_seller(
    session: Session, caller: Caller, tenant: Tenant, name: str | None, contact: str | None
) -> bool:
    """Change the tenant's seller and audit it in the tenant's chain; the caller commits and
    tells the streams on air (``streaming.tell_tenant_seller``). False when nothing changed.

    A contact needs a name to follow (the panel reads "Seller: NAME · CONTACT")."""
    if contact and not name:
        raise validation_problem(
            [
                {
                    "field": "body.seller_name",
                    "message": "a seller contact needs a seller name",
                    "type": "value",
                }
            ]
        )
    if (tenant.seller_name, tenant.seller_contact) == (name, contact):
        return False
    tenant.seller_name, tenant.seller_contact = name, contact
    detail = {"seller_name": name, "seller_contact": contact}
    audit(session, caller, kind="seller_updated", detail=detail, tenant_id=tenant.id)
    return True


def seller_of(tenant: Tenant) -> tuple[str, str] | None:
    """The seller a stream shows: (name, contact), or None for no panel."""
    return tenant.seller


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
def create_tenant(body: TenantCreate, session: SessionDep, caller: AdminDep) -> TenantPublic:
    conflict = ProblemError(409, f"a tenant named {body.name!r} exists", kind="conflict")
    if session.scalar(select(Tenant.id).where(Tenant.name == body.name)) is not None:
        raise conflict
    tenant = Tenant(id=secrets.token_hex(8), name=body.name)
    session.add(tenant)
    session.flush()
    audit(
        session, caller, kind="tenant_created", detail={"tenant_id": tenant.id, "name": body.name}
    )
    set_seller(session, caller, tenant, body.seller_name, body.seller_contact)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise conflict from None
    return TenantPublic.model_validate(tenant)


@router.get("/{tenant_id}", response_model=TenantPublic, responses=problem_responses(404))
def get_tenant(tenant_id: str, session: SessionDep, _: AdminDep) -> TenantPublic:
    return TenantPublic.model_validate(_get(session, tenant_id))


@router.patch("/{tenant_id}", response_model=TenantPublic, responses=problem_responses(404, 409))
def update_tenant(
    tenant_id: str, body: TenantUpdate, session: SessionDep, caller: AdminDep, ctx: ContextDep
) -> TenantPublic:
    """Rename a tenant or change its seller; only the fields sent change."""
    tenant = _get(session, tenant_id)
    sent = body.model_fields_set
    conflict = ProblemError(409, f"a tenant named {body.name!r} exists", kind="conflict")
    if body.name is not None and body.name != tenant.name:
        taken = select(Tenant.id).where(Tenant.name == body.name, Tenant.id != tenant.id)
        if session.scalar(taken) is not None:
            raise conflict
        tenant.name = body.name
    name = body.seller_name if "seller_name" in sent else tenant.seller_name
    contact = body.seller_contact if "seller_contact" in sent else tenant.seller_contact
    seller_changed = set_seller(session, caller, tenant, name, contact)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise conflict from None
    if seller_changed:
        tell_tenant_seller(ctx, tenant.id, seller_of(tenant))
    return TenantPublic.model_validate(tenant)


@router.delete(
    "/{tenant_id}", status_code=204, response_class=Response, responses=problem_responses(404, 409)
)
def delete_tenant(
    tenant_id: str, session: SessionDep, caller: AdminDep, ctx: ContextDep
) -> Response:
    """Delete a tenant with its keys, products, destinations, streams and events; its
    streams on air stop at once. The deletion is audited in the admin's own chain (the
    tenant's chain goes with it)."""
    tenant = _get(session, tenant_id)
    if tenant.id == caller.tenant_id:
        raise ProblemError(409, "an admin cannot delete its own tenant", kind="conflict")
    stream_ids = list(session.scalars(select(StreamRow.id).where(StreamRow.tenant_id == tenant.id)))
    detail = {"tenant_id": tenant.id, "name": tenant.name, "streams": len(stream_ids)}
    session.delete(tenant)
    audit(session, caller, kind="tenant_deleted", detail=detail)
    session.commit()
    ctx.keys.forget_tenant(tenant_id)
    _stop_streams(ctx, stream_ids)
    return Response(status_code=204)


def _stop_streams(ctx: AppContext, stream_ids: list[str]) -> None:
    """Reconcile each of a deleted tenant's streams: gone from the database, so stopped."""
    manager = ctx.extras.get(EXTRAS_KEY)
    if manager is None:
        return
    running = set(manager.runner.running())
    for stream_id in stream_ids:
        if stream_id in running:
            anyio.from_thread.run(manager.runner.kill, stream_id)
        anyio.from_thread.run(manager.reconcile, stream_id)
