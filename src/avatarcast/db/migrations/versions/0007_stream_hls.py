"""A stream's HLS output: ``{enabled, low_latency, public}`` or null.

Revision ID: 0007_stream_hls
Revises: 0006_layouts (branch portrait: a stream's size and preset)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007_stream_hls"
down_revision: str | Sequence[str] | None = "0006_layouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.add_column(
            sa.Column("hls", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("hls")
