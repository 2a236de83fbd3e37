"""Audit trail: hash-chained entries and one lockable head row per chain.

Revision ID: 0003_audit_log
Revises: 0002_streams_schedules
Create Date: 2025-01-03

``tenant_id`` has no foreign key on purpose: an audit trail outlives the tenant it is about.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_audit_log"
down_revision: str | Sequence[str] | None = "0002_streams_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_bigint_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", _bigint_pk, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint(
            "tenant_id", "stream_id", "seq", name="uq_audit_log_tenant_id_stream_id_seq"
        ),
    )
    op.create_index("ix_audit_log_tenant_time", "audit_log", ["tenant_id", "time"])
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("base_seq", sa.Integer(), nullable=False),
        sa.Column("base_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "stream_id", name="pk_audit_heads"),
    )


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_index("ix_audit_log_tenant_time", table_name="audit_log")
    op.drop_table("audit_log")
