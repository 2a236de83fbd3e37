"""Supervisors, duty and heartbeats on streams, key links, labels, and transcripts.

Revision ID: 0004_supervision
Revises: 0003_audit_log
Create Date: 2025-01-04

``transcript_lines`` has no foreign keys: like the audit trail, a transcript outlives its stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_supervision"
down_revision: str | Sequence[str] | None = "0003_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_bigint_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "supervisors",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("reference", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_supervisors_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_supervisors"),
    )
    op.create_table(
        "transcript_lines",
        sa.Column("id", _bigint_pk, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("wall_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=True),
        sa.Column("facts", _json, nullable=False),
        sa.Column("verdicts", _json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transcript_lines"),
    )
    op.create_index(
        "ix_transcript_lines_stream", "transcript_lines", ["tenant_id", "stream_id", "id"]
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("supervisor_id", sa.String(32), nullable=True))
    with op.batch_alter_table("streams") as batch:
        batch.add_column(sa.Column("label", _json, nullable=True))
        batch.add_column(
            sa.Column("approve_answers", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("duty_supervisor_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("duty_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        for name in ("heartbeat_at", "duty_since", "duty_supervisor_id", "approve_answers"):
            batch.drop_column(name)
        batch.drop_column("label")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("supervisor_id")
    op.drop_index("ix_transcript_lines_stream", table_name="transcript_lines")
    op.drop_table("transcript_lines")
    op.drop_table("supervisors")
