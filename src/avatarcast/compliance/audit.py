"""An append-only, hash-chained audit trail of what people and the system did to a stream.

Each tenant has one chain for its own actions (``stream_id == ""``) and one per stream. An
entry's ``hash`` is SHA-256 over the canonical JSON of its fields and ``prev_hash``, so editing,
removing, inserting or reordering an entry breaks the chain from there on; ``verify`` names the
first entry that does not fit. A chain checked on its own cannot tell that entries were cut off
its end: compare its last hash with a head written somewhere else (``write_anchor``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarcast.compliance.chain import (
    GENESIS,
    AuditEntry,
    BadEntry,
    ChainHead,
    ChainKey,
    VerifyResult,
    canonical_json,
    entry_hash,
    format_time,
    read_jsonl,
    verify,
    write_jsonl,
)
from avatarcast.db.models_audit import AuditHead, AuditRow
from avatarcast.errors import ComplianceError

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "BadEntry",
    "ChainHead",
    "ChainKey",
    "VerifyResult",
    "canonical_json",
    "entry_hash",
    "format_time",
    "read_jsonl",
    "verify",
    "write_jsonl",
]


# --- the database ---------------------------------------------------------------------------


class AuditLog:
    """Appends to and reads the ``audit_log`` table. The caller owns the transaction.

    ``append`` first bumps the chain's head row with an ``UPDATE``: on PostgreSQL that takes the
    row lock, on SQLite the database write lock, in both cases held until the caller commits.
    A second writer of the same chain waits there and then builds on the first one's entry.
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    def append(
        self,
        session: Session,
        *,
        tenant_id: str,
        stream_id: str | None,
        actor: str,
        kind: str,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry to the chain of ``(tenant_id, stream_id)``; visible after commit."""
        key = (tenant_id, stream_id or "")
        try:
            text = canonical_json(dict(detail or {}))
        except (TypeError, ValueError) as e:
            raise ComplianceError(f"audit detail of {kind!r} is not JSON-safe: {e}") from None
        seq, prev = self._take_head(session, key)
        time = self._clock()
        body = json.loads(text)
        digest = entry_hash(
            seq=seq,
            time=time,
            tenant_id=key[0],
            stream_id=key[1],
            actor=actor,
            kind=kind,
            detail=body,
            prev_hash=prev,
        )
        row = {
            "tenant_id": key[0],
            "stream_id": key[1],
            "seq": seq,
            "time": time,
            "actor": actor,
            "kind": kind,
            "detail": text,
            "prev_hash": prev,
            "hash": digest,
        }
        session.execute(_INSERT_ROW, row)
        session.execute(_SET_HEAD_HASH, {**_head_params(key), "new_hash": digest})
        return AuditEntry(
            seq=seq,
            time=time,
            tenant_id=key[0],
            stream_id=key[1],
            actor=actor,
            kind=kind,
            detail=body,
            prev_hash=prev,
            hash=digest,
        )

    def _take_head(self, session: Session, key: ChainKey) -> tuple[int, str]:
        """Lock the head row and claim the next seq: ``(new seq, hash of the last entry)``.

        One ``UPDATE ... RETURNING`` (SQLite >= 3.35, PostgreSQL) on the table, not the ORM
        entity: this runs on every audited request and the ORM path costs a millisecond."""
        params = _head_params(key)
        head = session.execute(_BUMP_HEAD, params).first()
        if head is None:
            self._create_head(session, key)
            head = session.execute(_BUMP_HEAD, params).one()
        return int(head.seq), str(head.hash)

    @staticmethod
    def _create_head(session: Session, key: ChainKey) -> None:
        values = {
            "tenant_id": key[0],
            "stream_id": key[1],
            "seq": 0,
            "hash": GENESIS,
            "base_seq": 0,
            "base_hash": GENESIS,
        }
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            session.execute(pg_insert(AuditHead).values(values).on_conflict_do_nothing())
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            session.execute(sqlite_insert(AuditHead).values(values).on_conflict_do_nothing())
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            try:
                with session.begin_nested():
                    session.execute(insert(AuditHead).values(values))
            except IntegrityError:
                pass

    # --- reading ------------------------------------------------------------------------------

    def page(
        self,
        session: Session,
        *,
        tenant_id: str,
        stream_id: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Sequence[AuditRow]:
        """Rows in insertion order after row id ``after``, ``limit + 1`` to tell a next page."""
        query = select(AuditRow).where(AuditRow.tenant_id == tenant_id, AuditRow.id > after)
        if stream_id is not None:
            query = query.where(AuditRow.stream_id == stream_id)
        return session.scalars(query.order_by(AuditRow.id).limit(limit + 1)).all()

    def entries(
        self, session: Session, *, tenant_id: str | None = None, stream_id: str | None = None
    ) -> Iterator[AuditEntry]:
        """Every kept entry, chain by chain in seq order."""
        query = select(AuditRow)
        if tenant_id is not None:
            query = query.where(AuditRow.tenant_id == tenant_id)
        if stream_id is not None:
            query = query.where(AuditRow.stream_id == stream_id)
        order = (AuditRow.tenant_id, AuditRow.stream_id, AuditRow.seq)
        for row in session.scalars(query.order_by(*order).execution_options(yield_per=1000)):
            yield entry_of(row)

    def heads(
        self, session: Session, *, tenant_id: str | None = None, stream_id: str | None = None
    ) -> dict[ChainKey, ChainHead]:
        query = select(AuditHead)
        if tenant_id is not None:
            query = query.where(AuditHead.tenant_id == tenant_id)
        if stream_id is not None:
            query = query.where(AuditHead.stream_id == stream_id)
        return {
            (h.tenant_id, h.stream_id): ChainHead(h.seq, h.hash, h.base_seq, h.base_hash)
            for h in session.scalars(query)
        }

    def verify_database(
        self, session: Session, *, tenant_id: str | None = None, stream_id: str | None = None
    ) -> VerifyResult:
        """Every chain against its head row: catches edits, gaps, and cuts at either end.

        Entries and their heads come from one statement, so an append committed while this
        runs cannot make a chain look longer or shorter than its head. Heads of chains with
        no entries left are read first.
        """
        heads = self.heads(session, tenant_id=tenant_id, stream_id=stream_id)
        query = select(AuditRow, AuditHead).outerjoin(
            AuditHead,
            and_(
                AuditHead.tenant_id == AuditRow.tenant_id, AuditHead.stream_id == AuditRow.stream_id
            ),
        )
        if tenant_id is not None:
            query = query.where(AuditRow.tenant_id == tenant_id)
        if stream_id is not None:
            query = query.where(AuditRow.stream_id == stream_id)
        query = query.order_by(AuditRow.tenant_id, AuditRow.stream_id, AuditRow.seq)
        entries: list[AuditEntry] = []
        for row, head in session.execute(query.execution_options(yield_per=1000)):
            entries.append(entry_of(row))
            key = (row.tenant_id, row.stream_id)
            if head is None:
                heads.pop(key, None)
            else:
                heads[key] = ChainHead(head.seq, head.hash, head.base_seq, head.base_hash)
        return verify(entries, heads=heads)

    def write_anchor(self, session: Session, path: Path) -> int:
        """Append every chain's head to ``path`` (JSON Lines) and return how many.

        Kept somewhere the database's writers cannot rewrite (a WORM bucket, a log shipper,
        a signed e-mail), an anchor proves what the chains held at that time.
        """
        heads = self.heads(session)
        record = {
            "time": format_time(self._clock()),
            "heads": [
                {"tenant_id": k[0], "stream_id": k[1], "seq": h.seq, "hash": h.hash}
                for k, h in sorted(heads.items())
            ],
        }
        with path.open("a", encoding="utf-8") as f:
            f.write(canonical_json(record) + "\n")
        return len(heads)

    # --- retention ----------------------------------------------------------------------------

    def purge_before(
        self, session: Session, cutoff: datetime, *, dry_run: bool = False
    ) -> dict[ChainKey, tuple[int, int]]:
        """Delete each chain's longest prefix of entries older than ``cutoff``.

        Returns ``{chain: (first seq, last seq)}`` deleted (or that would be). The head keeps
        the last deleted entry's seq and hash, so the rest still verifies from its first entry.
        """
        keys = session.execute(
            select(AuditRow.tenant_id, AuditRow.stream_id).where(AuditRow.time < cutoff).distinct()
        ).all()
        done: dict[ChainKey, tuple[int, int]] = {}
        for tenant_id, stream_id in keys:
            key = (str(tenant_id), str(stream_id))
            span = self._purge_chain(session, key, cutoff, dry_run=dry_run)
            if span is not None:
                done[key] = span
        return done

    def _purge_chain(
        self, session: Session, key: ChainKey, cutoff: datetime, *, dry_run: bool
    ) -> tuple[int, int] | None:
        if not dry_run:  # lock the head first, like append
            session.execute(update(AuditHead).where(*_is_head(key)).values(seq=AuditHead.seq))
        in_chain = (AuditRow.tenant_id == key[0], AuditRow.stream_id == key[1])
        first_young = session.scalar(
            select(func.min(AuditRow.seq)).where(*in_chain, AuditRow.time >= cutoff)
        )
        old = select(AuditRow).where(*in_chain)
        if first_young is not None:
            old = old.where(AuditRow.seq < first_young)
        rows = session.scalars(old.order_by(AuditRow.seq)).all()
        if not rows:
            return None
        span = (rows[0].seq, rows[-1].seq)
        if not dry_run:
            session.execute(
                update(AuditHead)
                .where(*_is_head(key))
                .values(base_seq=rows[-1].seq, base_hash=rows[-1].hash)
            )
            for row in rows:
                session.delete(row)
            session.flush()
        return span


def entry_of(row: AuditRow) -> AuditEntry:
    """The chain entry a stored row holds."""
    return AuditEntry(
        seq=row.seq,
        time=row.time,
        tenant_id=row.tenant_id,
        stream_id=row.stream_id,
        actor=row.actor,
        kind=row.kind,
        detail=json.loads(row.detail),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _is_head(key: ChainKey) -> tuple[Any, Any]:
    return (AuditHead.tenant_id == key[0], AuditHead.stream_id == key[1])


# Statements of ``append``, built once: the hot path only binds values.
_HEADS = cast(Table, AuditHead.__table__)
_IS_HEAD = (
    _HEADS.c.tenant_id == bindparam("head_tenant"),
    _HEADS.c.stream_id == bindparam("head_stream"),
)
_BUMP_HEAD = (
    update(_HEADS)
    .where(*_IS_HEAD)
    .values(seq=_HEADS.c.seq + 1)
    .returning(_HEADS.c.seq, _HEADS.c.hash)
)
_SET_HEAD_HASH = update(_HEADS).where(*_IS_HEAD).values(hash=bindparam("new_hash"))
_INSERT_ROW = insert(cast(Table, AuditRow.__table__))


def _head_params(key: ChainKey) -> dict[str, str]:
    return {"head_tenant": key[0], "head_stream": key[1]}
