"""Streams, schedules and the schedule windows already opened.

Revision ID: 0002_streams_schedules
Revises: 0001_control_plane
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_streams_schedules"
down_revision: str | Sequence[str] | None = "0001_control_plane"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_bigint_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "streams",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("product_ids", _json, nullable=True),
        sa.Column("avatar", sa.String(64), nullable=False),
        sa.Column("voice", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.Column("writer", sa.String(16), nullable=False),
        sa.Column("destination_ids", _json, nullable=False),
        sa.Column("record", sa.Boolean(), nullable=False),
        sa.Column("desired_state", sa.String(16), nullable=False),
        sa.Column("whep_token", sa.String(64), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _tenant_fk("streams"),
        sa.PrimaryKeyConstraint("id", name="pk_streams"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_streams_tenant_id_name"),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("days", _json, nullable=False),
        sa.Column("start_time", sa.String(5), nullable=False),
        sa.Column("end_time", sa.String(5), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _tenant_fk("schedules"),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name="fk_schedules_stream_id_streams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
    )
    op.create_index("ix_schedules_stream_id", "schedules", ["stream_id"])
    op.create_table(
        "schedule_runs",
        sa.Column("id", _bigint_pk, autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(32), nullable=False),
        sa.Column("window_key", sa.String(64), nullable=False),
        _time("starts_at"),
        _time("ends_at"),
        _time("started_at"),
        _time("stopped_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name="fk_schedule_runs_schedule_id_schedules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_runs"),
        sa.UniqueConstraint(
            "schedule_id", "window_key", name="uq_schedule_runs_schedule_id_window_key"
        ),
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_index("ix_schedules_stream_id", table_name="schedules")
    op.drop_table("schedules")
    op.drop_table("streams")
