"""Tables of the audit trail: the entries, and one head row per chain that writers lock.

``tenant_id`` is deliberately not a foreign key: deleting a tenant must not delete its audit
trail. ``stream_id`` is ``""`` for a tenant's own chain (keys, products, destinations).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, BigIntPk, UtcDateTime


class AuditRow(Base):
    """One entry. ``detail`` is stored as the canonical JSON text that was hashed."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("tenant_id", "stream_id", "seq"),
        Index("ix_audit_log_tenant_time", "tenant_id", "time"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    stream_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The last entry of a chain, and where the retained part starts (after a purge).

    Appending takes this row's lock (an ``UPDATE`` first), so two writers of one chain take
    turns instead of both building on the same predecessor.
    """

    __tablename__ = "audit_heads"

    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    base_seq: Mapped[int] = mapped_column(Integer)
    base_hash: Mapped[str] = mapped_column(String(64))
