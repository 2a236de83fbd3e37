"""Console sign-in sessions, in the database so they outlive a restart and are shared by every
API process. The browser's cookie holds a random id; only its SHA-256 is stored here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, UtcDateTime

__all__ = ["ConsoleSessionRow"]


class ConsoleSessionRow(Base):
    __tablename__ = "console_sessions"

    #: SHA-256 (hex) of the cookie's random id: a copy of the table cannot be replayed
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the API key the session was opened with (never its secret); revoking it ends the session
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    supervisor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_console_sessions_last_seen", "last_seen"),)
