"""The audit trail of the caller's tenant, for supervisors and admins."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from avatarcast.compliance.audit import AuditLog, entry_of
from avatarcast.control.deps import SessionDep, StaffDep
from avatarcast.control.pagination import CursorQuery, LimitQuery, after_key, cut_page
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.audit import AuditEntryPublic, AuditPage
from avatarcast.db.models_audit import AuditRow

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=AUTH_PROBLEMS)
_log = AuditLog()


@router.get("", response_model=AuditPage)
def list_audit(
    session: SessionDep,
    caller: StaffDep,
    stream_id: Annotated[
        str | None, Query(max_length=64, description='A stream, or "" for tenant actions')
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> AuditPage:
    """Oldest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    rows = _log.page(
        session,
        tenant_id=caller.tenant_id,
        stream_id=stream_id,
        after=after_key(cursor),
        limit=limit,
    )
    page, nxt = cut_page(rows, limit, lambda r: r.id)
    return AuditPage(items=[_public(r) for r in page], next_cursor=nxt)


def _public(row: AuditRow) -> AuditEntryPublic:
    return AuditEntryPublic(id=row.id, **asdict(entry_of(row)))
