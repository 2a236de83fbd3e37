"""The API's product is ``catalog.Product`` exactly; responses add timestamps only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from avatarcast.catalog.model import Availability, FaqEntry, Localized, Money, Product
from avatarcast.control.problems import RowError


class ProductCreate(Product):
    """A full product, as ``catalog.Product``."""


class ProductUpdate(BaseModel):
    """PATCH: the fields given replace the stored ones; ``null`` clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    title: Localized | None = None
    brand: str | None = Field(default=None, min_length=1, max_length=120)
    price: Money | None = None
    currency: str | None = None
    sale_price: Money | None = None
    prior_lowest_price: Money | None = None
    availability: Availability | None = None
    stock: int | None = Field(default=None, ge=0)
    facts: dict[str, object] | None = None
    selling_points: list[Localized] | None = None
    faq: list[FaqEntry] | None = None
    image: str | None = None
    url: str | None = None


class ProductPublic(Product):
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[ProductPublic]
    next_cursor: str | None = None


class ImportResult(BaseModel):
    imported: int = Field(description="Products that did not exist before")
    updated: int = Field(description="Existing products whose content changed")
    unchanged: int = Field(description="Existing products sent again without changes")
    errors: list[RowError] = Field(
        description="Bad rows: 0-based index (JSON, XML, Shopify) or line (CSV, TSV)"
    )
