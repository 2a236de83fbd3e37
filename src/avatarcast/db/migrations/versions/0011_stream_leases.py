"""Stream leases: which API process runs a stream on air (several processes, one database).

Revision ID: 0011_stream_leases
Revises: 0010_chat_sources
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_stream_leases"
down_revision: str | Sequence[str] | None = "0010_chat_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_leases",
        sa.Column(
            "stream_id",
            sa.String(32),
            sa.ForeignKey("streams.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stream_leases")
