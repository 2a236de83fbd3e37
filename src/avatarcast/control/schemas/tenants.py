from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from avatarcast.control.schemas.common import In, Out

#: One line of visible text: no leading or trailing space, no line breaks.
_LINE = r"^\S(.*\S)?$"
SellerName = Annotated[str, Field(min_length=1, max_length=120, pattern=_LINE)]
SellerContact = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=_LINE,
        description="an address or a contact link, shown after the seller's name",
    ),
]


class TenantCreate(In):
    name: str = Field(min_length=1, max_length=120, pattern=_LINE)
    seller_name: SellerName | None = None
    seller_contact: SellerContact | None = None


class TenantUpdate(In):
    """Only the fields sent change; ``null`` clears a seller field."""

    name: str | None = Field(default=None, min_length=1, max_length=120, pattern=_LINE)
    seller_name: SellerName | None = None
    seller_contact: SellerContact | None = None


class TenantPublic(Out):
    id: str
    name: str
    seller_name: str | None = None
    seller_contact: str | None = None
    created_at: datetime


class TenantPage(Out):
    items: list[TenantPublic]
    next_cursor: str | None = None


class SellerIn(In):
    """The seller shown on screen for the whole of every stream of the tenant."""

    name: SellerName
    contact: SellerContact | None = None


class SellerPublic(Out):
    """``name`` None: no seller is set and streams show no seller panel."""

    name: str | None = None
    contact: str | None = None
