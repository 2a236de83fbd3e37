"""Rate-limit state that several API processes on one PostgreSQL share."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, UtcDateTime


class RateBucket(Base):
    """One API key's token bucket: ``tokens`` left at ``stamp``; ``granted`` says whether the
    last take got a token (an upsert's RETURNING cannot see the row as it was before)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    stamp: Mapped[datetime] = mapped_column(UtcDateTime)
    granted: Mapped[bool] = mapped_column(Boolean)
