"""Rate buckets: one token bucket per API key, shared by every API process on one database.

Revision ID: 0013_rate_buckets
Revises: 0012_stream_mouth
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_rate_buckets"
down_revision: str | Sequence[str] | None = "0012_stream_mouth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
