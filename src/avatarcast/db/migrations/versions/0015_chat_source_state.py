"""What a chat source keeps across a restart: a YouTube source's quota units used in the
current Pacific-time quota day and its place in the chat (the page token to poll next), and
any source's platform limit on written answers (tokens left in its bucket, and when).

Revision ID: 0015_chat_source_state
Revises: 0014_chat_persistence
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0015_chat_source_state"
down_revision: str | Sequence[str] | None = "0014_chat_persistence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_source_state",
        sa.Column("source_id", sa.String(32), nullable=False),
        sa.Column("quota_day", sa.String(10), nullable=True),
        sa.Column("quota_used", sa.Integer(), nullable=False),
        sa.Column("quota_calls", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("cursor_of", sa.Text(), nullable=True),
        sa.Column("send_tokens", sa.Float(), nullable=True),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["chat_sources.id"],
            name="fk_chat_source_state_source_id_chat_sources",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", name="pk_chat_source_state"),
    )


def downgrade() -> None:
    op.drop_table("chat_source_state")
