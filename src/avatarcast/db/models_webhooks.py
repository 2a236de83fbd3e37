"""Webhooks: where a tenant wants its stream events sent, and each delivery of one event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, BigIntPk, JsonType, UtcDateTime, utcnow


class Webhook(Base):
    """A receiver of a tenant's stream events. ``secret`` is sealed with the server key and
    write-only: it signs each delivery and is never returned or logged."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(Text)
    #: stream event kinds it receives (``glitch``, ``crashed`` ...); ``["*"]``: every kind
    events: Mapped[list[str]] = mapped_column(JsonType, default=list)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"Webhook(id={self.id!r}, tenant_id={self.tenant_id!r})"


class WebhookDelivery(Base):
    """One event on its way to one webhook: ``pending`` until it is ``delivered`` or, after
    the last attempt, ``dead`` (the dead-letter list). ``payload`` is the event as sent; the
    body of each attempt adds the attempt's timestamp."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: what the last attempt got: an HTTP status, or the error (no URL, no secret in it)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
