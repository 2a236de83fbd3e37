"""Products of a tenant, stored as validated ``catalog.Product`` payloads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.catalog.model import Product
from avatarcast.db.base import utcnow
from avatarcast.db.models import ProductRow

#: Rows written between flushes during an import (the transaction stays one).
FLUSH_EVERY = 200
_IN_CHUNK = 500


def to_product(row: ProductRow) -> Product:
    return Product.model_validate(row.payload)


def payload_of(product: Product) -> dict[str, object]:
    return product.model_dump(mode="json", exclude_none=True)


def get_row(session: Session, tenant_id: str, product_id: str) -> ProductRow | None:
    return session.scalar(
        select(ProductRow).where(
            ProductRow.tenant_id == tenant_id, ProductRow.product_id == product_id
        )
    )


def list_rows(session: Session, tenant_id: str, *, after: int, limit: int) -> Sequence[ProductRow]:
    """In insertion (rundown) order, ``limit + 1`` rows to tell whether a next page exists."""
    return session.scalars(
        select(ProductRow)
        .where(ProductRow.tenant_id == tenant_id, ProductRow.pk > after)
        .order_by(ProductRow.pk)
        .limit(limit + 1)
    ).all()


@dataclass(slots=True)
class UpsertOutcome:
    created: list[Product] = field(default_factory=list)
    updated: list[Product] = field(default_factory=list)
    unchanged: list[Product] = field(default_factory=list)

    @property
    def changed(self) -> list[Product]:
        return self.created + self.updated


def upsert(
    session: Session,
    tenant_id: str,
    products: Sequence[Product],
    *,
    loaded: Sequence[ProductRow] = (),
) -> UpsertOutcome:
    """Insert or replace ``products`` in the session's transaction; the caller commits.

    ``loaded``: rows of this tenant the caller has already read in this session, so they
    are not read again."""
    existing: dict[str, ProductRow] = {r.product_id: r for r in loaded if r.tenant_id == tenant_id}
    ids = [p.id for p in products if p.id not in existing]
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        rows = session.scalars(
            select(ProductRow).where(
                ProductRow.tenant_id == tenant_id, ProductRow.product_id.in_(chunk)
            )
        )
        existing.update((r.product_id, r) for r in rows)
    out = UpsertOutcome()
    now = utcnow()
    for n, product in enumerate(products, start=1):
        payload = payload_of(product)
        row = existing.get(product.id)
        if row is None:
            row = ProductRow(tenant_id=tenant_id, product_id=product.id, payload=payload)
            row.created_at = row.updated_at = now
            session.add(row)
            existing[product.id] = row
            out.created.append(product)
        elif row.payload == payload:
            out.unchanged.append(product)
        else:
            row.payload, row.updated_at = payload, now
            out.updated.append(product)
        if n % FLUSH_EVERY == 0:
            session.flush()
    session.flush()
    return out
