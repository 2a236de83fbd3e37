"""Tables of the control plane. Streams and schedules add theirs in ``models_streams.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, BigIntPk, JsonType, UtcDateTime, utcnow


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: The seller shown on every stream of the tenant (live-commerce rules); None: no panel.
    seller_name: Mapped[str | None] = mapped_column(String(120), default=None)
    #: An address or contact link shown after the seller's name.
    seller_contact: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @property
    def seller(self) -> tuple[str, str] | None:
        """``(name, contact)`` for the on-screen panel, or None when no seller is set."""
        if not self.seller_name:
            return None
        return self.seller_name, self.seller_contact or ""


class ApiKey(Base):
    """A key is ``avk_<id>_<secret>``; only an HMAC-SHA256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: A supervisor key acts as this supervisor (duty, heartbeats, on-air actions).
    supervisor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class ProductRow(Base):
    """One product of one tenant; ``payload`` is ``catalog.Product.model_dump(mode="json")``."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("tenant_id", "product_id"),)

    pk: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Destination(Base):
    """Where a stream is pushed. ``stream_key`` is write-only: never returned, never logged."""

    __tablename__ = "destinations"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    url: Mapped[str] = mapped_column(String(2048))
    stream_key: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:  # keep the stream key out of logs and tracebacks
        return f"Destination(id={self.id!r}, tenant_id={self.tenant_id!r}, name={self.name!r})"


class Event(Base):
    """Something that happened to a stream. ``stream_id`` gets its foreign key with streams."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_tenant_stream", "tenant_id", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    stream_id: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
