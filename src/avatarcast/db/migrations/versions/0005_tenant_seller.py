"""The seller of a tenant, shown on screen for the whole of each of its streams.

Revision ID: 0005_tenant_seller
Revises: 0004_supervision
Create Date: 2025-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_tenant_seller"
down_revision: str | Sequence[str] | None = "0004_supervision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("seller_name", sa.String(120), nullable=True))
        batch.add_column(sa.Column("seller_contact", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("seller_contact")
        batch.drop_column("seller_name")
