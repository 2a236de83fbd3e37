"""Control plane: tenants, API keys, products, destinations, stream events.

Revision ID: 0001_control_plane
Revises:
Create Date: 2025-01-01

Stream and schedule tables chain after this one (``down_revision = "0001_control_plane"``).
Migrations use plain column types, never the app's, so old revisions keep working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_control_plane"
down_revision: str | Sequence[str] | None = None
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
        "tenants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(24), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        _tenant_fk("api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "products",
        sa.Column("pk", _bigint_pk, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("payload", _json, nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _tenant_fk("products"),
        sa.PrimaryKeyConstraint("pk", name="pk_products"),
        sa.UniqueConstraint("tenant_id", "product_id", name="uq_products_tenant_id_product_id"),
    )
    op.create_table(
        "destinations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("stream_key", sa.Text(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _tenant_fk("destinations"),
        sa.PrimaryKeyConstraint("id", name="pk_destinations"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_destinations_tenant_id_name"),
    )
    op.create_table(
        "events",
        sa.Column("id", _bigint_pk, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        _time("time"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", _json, nullable=False),
        _tenant_fk("events"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_tenant_stream", "events", ["tenant_id", "stream_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_tenant_stream", table_name="events")
    op.drop_table("events")
    op.drop_table("destinations")
    op.drop_table("products")
    op.drop_index("ix_api_keys_tenant_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
