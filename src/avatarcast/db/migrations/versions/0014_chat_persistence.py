"""Chat that survives a restart: webhook signatures seen in the replay window, and each
stream's account of message fates.

Revision ID: 0014_chat_persistence
Revises: 0013_rate_buckets
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014_chat_persistence"
down_revision: str | Sequence[str] | None = "0013_rate_buckets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_hook_seen",
        sa.Column("source_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(80), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["chat_sources.id"],
            name="fk_chat_hook_seen_source_id_chat_sources",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "signature", name="pk_chat_hook_seen"),
    )
    op.create_index("ix_chat_hook_seen_seen_at", "chat_hook_seen", ["seen_at"])
    op.create_table(
        "chat_accounts",
        sa.Column("stream_id", sa.String(32), nullable=False),
        sa.Column("account", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name="fk_chat_accounts_stream_id_streams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", name="pk_chat_accounts"),
    )


def downgrade() -> None:
    op.drop_table("chat_accounts")
    op.drop_index("ix_chat_hook_seen_seen_at", table_name="chat_hook_seen")
    op.drop_table("chat_hook_seen")
