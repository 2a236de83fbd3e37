from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from avatarcast.control.schemas.common import In, Out

Role = Literal["admin", "operator", "supervisor", "backend"]


class KeyCreate(In):
    name: str = Field(min_length=1, max_length=120)
    role: Role
    tenant_id: str | None = Field(
        default=None, max_length=32, description="Another tenant's key (admin only)"
    )
    supervisor_id: str | None = Field(
        default=None,
        max_length=32,
        description="The supervisor record the key acts as (supervisor and operator keys); "
        "an operator key acts as a supervisor only when linked to one",
    )


class KeyPublic(Out):
    id: str
    tenant_id: str
    name: str
    role: Role
    supervisor_id: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(KeyPublic):
    key: str = Field(description="The secret key. Shown this once; only a hash is stored.")
