"""Platform chat sources of a stream (Twitch, YouTube, webhooks), kept across restarts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, JsonType, UtcDateTime, utcnow


class ChatSourceRow(Base):
    """One source. ``config`` is what the API shows (no credential); ``secret`` is the IRC
    token / OAuth token / webhook secret, sealed with the server key (``fernet:...``) and
    write-only: never returned, never logged."""

    __tablename__ = "chat_sources"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    secret: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"ChatSourceRow(id={self.id!r}, stream_id={self.stream_id!r}, kind={self.kind!r})"
