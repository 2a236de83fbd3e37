"""A twin stream's mouth engine and its onnx model (a manifest name in the pack), or null.

Revision ID: 0012_stream_mouth
Revises: 0011_stream_leases
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_stream_mouth"
down_revision: str | Sequence[str] | None = "0011_stream_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.add_column(sa.Column("mouth_engine", sa.String(16), nullable=True))
        batch.add_column(sa.Column("mouth_model", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("mouth_model")
        batch.drop_column("mouth_engine")
