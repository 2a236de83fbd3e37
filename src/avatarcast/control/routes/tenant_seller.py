"""The caller's own tenant's seller: shown on screen for the whole of every stream it runs.

Operators set it here; admins also can for any tenant through ``PATCH /v1/tenants/{id}``. A
stream on air shows the change from its next frame.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from avatarcast.control.deps import ContextDep, OperatorDep, ReaderDep, SessionDep
from avatarcast.control.problems import ProblemError
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.tenants import seller_of, set_seller
from avatarcast.control.schemas.tenants import SellerIn, SellerPublic
from avatarcast.control.streaming import tell_tenant_seller
from avatarcast.db.models import Tenant

router = APIRouter(prefix="/v1/tenant", tags=["tenants"], responses=AUTH_PROBLEMS)


def _mine(session: SessionDep, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:  # the key outlived its tenant within one request
        raise ProblemError(404, f"no tenant {tenant_id!r}", kind="not-found")
    return tenant


def _public(tenant: Tenant) -> SellerPublic:
    return SellerPublic(name=tenant.seller_name, contact=tenant.seller_contact)


@router.get("/seller", response_model=SellerPublic)
def get_seller(session: SessionDep, caller: ReaderDep) -> SellerPublic:
    return _public(_mine(session, caller.tenant_id))


@router.put("/seller", response_model=SellerPublic)
def put_seller(
    body: SellerIn, session: SessionDep, caller: OperatorDep, ctx: ContextDep
) -> SellerPublic:
    """Set the seller's name and (optionally) an address or contact link."""
    tenant = _mine(session, caller.tenant_id)
    if set_seller(session, caller, tenant, body.name, body.contact):
        session.commit()
        tell_tenant_seller(ctx, tenant.id, seller_of(tenant))
    return _public(tenant)


@router.delete("/seller", status_code=204, response_class=Response)
def delete_seller(session: SessionDep, caller: OperatorDep, ctx: ContextDep) -> Response:
    """No seller: streams show no seller panel from their next frame."""
    tenant = _mine(session, caller.tenant_id)
    if set_seller(session, caller, tenant, None, None):
        session.commit()
        tell_tenant_seller(ctx, tenant.id, None)
    return Response(status_code=204)
