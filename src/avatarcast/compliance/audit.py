"""An append-only, hash-chained audit trail of what people and the system did to a stream.

Each tenant has one chain for its own actions (``stream_id == ""``) and one per stream. An
entry's ``hash`` is SHA-256 over the canonical JSON of its fields and ``prev_hash``, so editing,
removing, inserting or reordering an entry breaks the chain from there on; ``verify`` names the
first entry that does not fit. A chain checked on its own cannot tell that entries were cut off
its end: compare its last hash with a head written somewhere else (``write_anchor``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarcast.compliance.models import AuditHead, AuditRow
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
    "read_jsonl",
    "verify",
    "write_jsonl",
]

#: ``prev_hash`` of the first entry of every chain.
GENESIS = "0" * 64
#: ``(tenant_id, stream_id)``; ``stream_id`` is ``""`` for the tenant's own chain.
ChainKey = tuple[str, str]


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is, no NaN: one text for one value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def format_time(time: datetime) -> str:
    """Microseconds and ``Z``: the precision both SQLite and PostgreSQL give back unchanged."""
    if time.tzinfo is None:
        raise ComplianceError(f"naive audit time {time!r}; audit times are UTC")
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    seq: int,
    time: datetime,
    tenant_id: str,
    stream_id: str,
    actor: str,
    kind: str,
    detail: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "time": format_time(time),
        "tenant_id": tenant_id,
        "stream_id": stream_id,
        "actor": actor,
        "kind": kind,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    seq: int
    time: datetime
    tenant_id: str
    stream_id: str
    actor: str
    kind: str
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    @property
    def chain(self) -> ChainKey:
        return (self.tenant_id, self.stream_id)

    def computed_hash(self) -> str:
        return entry_hash(
            seq=self.seq,
            time=self.time,
            tenant_id=self.tenant_id,
            stream_id=self.stream_id,
            actor=self.actor,
            kind=self.kind,
            detail=self.detail,
            prev_hash=self.prev_hash,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": format_time(self.time),
            "tenant_id": self.tenant_id,
            "stream_id": self.stream_id,
            "actor": self.actor,
            "kind": self.kind,
            "detail": dict(self.detail),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEntry:
        try:
            time = datetime.fromisoformat(str(data["time"]))
            return cls(
                seq=int(data["seq"]),
                time=time if time.tzinfo else time.replace(tzinfo=UTC),
                tenant_id=str(data["tenant_id"]),
                stream_id=str(data["stream_id"]),
                actor=str(data["actor"]),
                kind=str(data["kind"]),
                detail=dict(data["detail"]),
                prev_hash=str(data["prev_hash"]),
                hash=str(data["hash"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ComplianceError(f"not an audit entry: {e!r}") from None

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEntry:
        return cls(
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


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain ends (``seq``, ``hash``) and what comes before its first kept entry."""

    seq: int
    hash: str
    base_seq: int = 0
    base_hash: str = GENESIS


@dataclass(frozen=True, slots=True)
class BadEntry:
    tenant_id: str
    stream_id: str
    seq: int  # of the entry that does not fit (or the head's, for a cut-off end)
    position: int  # 0-based line or row number in what was verified; -1 for a cut-off end
    reason: str

    def __str__(self) -> str:
        chain = f"tenant {self.tenant_id} stream {self.stream_id or '(tenant)'}"
        where = f"entry #{self.position + 1}, " if self.position >= 0 else ""
        return f"{chain}: {where}seq {self.seq}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    entries: int
    chains: int
    first_bad: BadEntry | None = None
    #: Chains whose first entry is not seq 1 and that had no head to vouch for the cut.
    starts_mid_chain: tuple[ChainKey, ...] = ()
    heads: dict[ChainKey, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    @property
    def first_bad_seq(self) -> int | None:
        return None if self.first_bad is None else self.first_bad.seq


def verify(
    entries: Iterable[AuditEntry], *, heads: Mapping[ChainKey, ChainHead] | None = None
) -> VerifyResult:
    """Check every chain in ``entries`` (in the order given) and stop at the first bad entry.

    With ``heads`` (from the database, or an anchor), a chain must also start right after its
    head's base and end exactly at the head: that catches entries removed from either end.
    """
    last: dict[ChainKey, tuple[int, str]] = {}
    mid: list[ChainKey] = []
    count = 0
    for position, entry in enumerate(entries):
        count += 1
        key = entry.chain
        if key in last:
            want_seq, want_prev = last[key][0] + 1, last[key][1]
        elif heads is not None and key in heads:
            want_seq, want_prev = heads[key].base_seq + 1, heads[key].base_hash
        elif entry.seq == 1:
            want_seq, want_prev = 1, GENESIS
        else:
            mid.append(key)
            want_seq, want_prev = entry.seq, entry.prev_hash
        reason = _mismatch(entry, want_seq, want_prev)
        if reason is not None:
            bad = BadEntry(key[0], key[1], entry.seq, position, reason)
            return VerifyResult(count, len(last) + (key not in last), bad, tuple(mid), last)
        last[key] = (entry.seq, entry.hash)
    for key, head in (heads or {}).items():
        have_seq, have_hash = last.get(key, (head.base_seq, head.base_hash))
        if (have_seq, have_hash) != (head.seq, head.hash):
            reason = f"the chain ends at seq {have_seq} but its head is seq {head.seq}"
            if have_seq == head.seq:
                reason = f"the last hash differs from the head's ({head.hash[:12]}...)"
            bad = BadEntry(key[0], key[1], head.seq, -1, reason)
            return VerifyResult(count, len(last), bad, tuple(mid), last)
    return VerifyResult(count, len(last), None, tuple(mid), last)


def _mismatch(entry: AuditEntry, want_seq: int, want_prev: str) -> str | None:
    if entry.seq > want_seq:
        missing = f"{want_seq}" if entry.seq == want_seq + 1 else f"{want_seq}-{entry.seq - 1}"
        return f"expected seq {want_seq}: entry {missing} is missing"
    if entry.seq < want_seq:
        return f"expected seq {want_seq}: out of order or duplicated"
    if entry.prev_hash != want_prev:
        return "prev_hash is not the previous entry's hash: inserted or reordered"
    if entry.computed_hash() != entry.hash:
        return "hash does not match the entry's fields: edited"
    return None


# --- JSON Lines -----------------------------------------------------------------------------


def write_jsonl(entries: Iterable[AuditEntry], out: TextIO) -> int:
    n = 0
    for entry in entries:
        out.write(json.dumps(entry.as_json(), ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def read_jsonl(path: Path) -> Iterator[AuditEntry]:
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ComplianceError(f"{path}:{n}: not JSON: {e.msg}") from None
                if not isinstance(data, dict):
                    raise ComplianceError(f"{path}:{n}: not a JSON object")
                yield AuditEntry.from_json(data)
    except OSError as e:
        raise ComplianceError(f"cannot read {path}: {e.strerror or e}") from e


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
        session.execute(
            insert(AuditRow).values(
                tenant_id=key[0],
                stream_id=key[1],
                seq=seq,
                time=time,
                actor=actor,
                kind=kind,
                detail=text,
                prev_hash=prev,
                hash=digest,
            )
        )
        session.execute(update(AuditHead).where(*_is_head(key)).values(hash=digest))
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
        """Lock the head row and claim the next seq: ``(new seq, hash of the last entry)``."""
        bump = update(AuditHead).where(*_is_head(key)).values(seq=AuditHead.seq + 1)
        if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
            self._create_head(session, key)
            session.execute(bump)
        head = session.execute(select(AuditHead.seq, AuditHead.hash).where(*_is_head(key))).one()
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
            yield AuditEntry.from_row(row)

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
        """Every chain against its head row: catches edits, gaps, and cuts at either end."""
        heads = self.heads(session, tenant_id=tenant_id, stream_id=stream_id)
        return verify(self.entries(session, tenant_id=tenant_id, stream_id=stream_id), heads=heads)

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


def _is_head(key: ChainKey) -> tuple[Any, Any]:
    return (AuditHead.tenant_id == key[0], AuditHead.stream_id == key[1])
