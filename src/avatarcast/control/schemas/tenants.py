from __future__ import annotations

from datetime import datetime

from pydantic import Field

from avatarcast.control.schemas.common import In, Out


class TenantCreate(In):
    name: str = Field(min_length=1, max_length=120, pattern=r"^\S(.*\S)?$")


class TenantPublic(Out):
    id: str
    name: str
    created_at: datetime


class TenantPage(Out):
    items: list[TenantPublic]
    next_cursor: str | None = None
