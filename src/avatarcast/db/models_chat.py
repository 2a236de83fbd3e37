"""Platform chat sources of a stream (Twitch, YouTube, webhooks), kept across restarts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text
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


class ChatHookSeenRow(Base):
    """A webhook post's signature taken within the replay window: a replay is refused even
    after a restart (and by another server on the same database). Rows older than twice the
    window are deleted."""

    __tablename__ = "chat_hook_seen"

    source_id: Mapped[str] = mapped_column(
        ForeignKey("chat_sources.id", ondelete="CASCADE"), primary_key=True
    )
    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ChatAccountRow(Base):
    """A stream's chat account (counts by fate, reason and kind), saved every moment, so
    "messages in = the sum of the fates" holds across restarts."""

    __tablename__ = "chat_accounts"

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    account: Mapped[dict[str, Any]] = mapped_column(JsonType)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ChatSourceStateRow(Base):
    """What a source keeps across a restart: a YouTube source's quota units used in
    ``quota_day`` (a Pacific-time date; units of an earlier day count as 0) by method, and
    ``cursor``, the page token to poll next; for any source that writes answers, its platform
    limit's bucket (``send_tokens`` left as of ``send_at``; see ``chatsources.sending``).
    Saved with the stream's account in one transaction, so the account and the place in the
    chat always agree."""

    __tablename__ = "chat_source_state"

    source_id: Mapped[str] = mapped_column(
        ForeignKey("chat_sources.id", ondelete="CASCADE"), primary_key=True
    )
    quota_day: Mapped[str | None] = mapped_column(String(10), default=None)
    quota_used: Mapped[int] = mapped_column(Integer, default=0)
    quota_calls: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    cursor: Mapped[str | None] = mapped_column(Text, default=None)
    #: the chat the cursor is a place in (a source edited to another chat starts afresh)
    cursor_of: Mapped[str | None] = mapped_column(Text, default=None)
    send_tokens: Mapped[float | None] = mapped_column(Float, default=None)
    send_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
