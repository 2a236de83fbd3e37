"""Frame layouts: a stream's own size and platform preset, and a destination's choice.

Revision ID: 0006_layouts
Revises: 0005_tenant_seller
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_layouts"
down_revision: str | Sequence[str] | None = "0005_tenant_seller"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("streams", "destinations"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("size", sa.String(16), nullable=True))
            batch.add_column(sa.Column("preset", sa.String(16), nullable=True))


def downgrade() -> None:
    for table in ("streams", "destinations"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("preset")
            batch.drop_column("size")
