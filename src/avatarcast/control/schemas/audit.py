from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from avatarcast.control.schemas.common import Out


class AuditEntryPublic(Out):
    """One audit entry with every field its hash covers; ``id`` is only the page position."""

    id: int
    seq: int
    time: datetime
    tenant_id: str
    stream_id: str = Field(description='"" for the tenant\'s own chain')
    actor: str
    kind: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(Out):
    items: list[AuditEntryPublic]
    next_cursor: str | None = None
