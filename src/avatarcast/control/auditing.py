"""Audit entries for what callers and the system do, with who did it as the actor.

An API caller is ``supervisor:<id>`` when its key is linked to a supervisor record, else
``key:<key id>``; the stream runner and the heartbeat watch act as ``system:<part>``. The
caller's key id and role always go in the detail, so an entry names the credential used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from avatarcast.compliance.audit import AuditEntry, AuditLog
from avatarcast.control.deps import Caller

__all__ = ["actor_of", "audit", "audit_system"]

_log = AuditLog()


def actor_of(caller: Caller) -> str:
    if caller.supervisor_id:
        return f"supervisor:{caller.supervisor_id}"
    return f"key:{caller.key_id}"


def audit(
    session: Session,
    caller: Caller,
    *,
    kind: str,
    stream_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    tenant_id: str | None = None,
) -> AuditEntry:
    """Append one caller's action to the tenant's (or the stream's) chain; the caller commits.

    ``tenant_id`` names another tenant's chain, for an admin acting on that tenant."""
    full = {"key_id": caller.key_id, "role": caller.role, **(detail or {})}
    return _log.append(
        session,
        tenant_id=tenant_id or caller.tenant_id,
        stream_id=stream_id,
        actor=actor_of(caller),
        kind=kind,
        detail=full,
    )


def audit_system(
    session: Session,
    *,
    tenant_id: str,
    stream_id: str | None,
    part: str,
    kind: str,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    return _log.append(
        session,
        tenant_id=tenant_id,
        stream_id=stream_id,
        actor=f"system:{part}",
        kind=kind,
        detail=dict(detail or {}),
    )
