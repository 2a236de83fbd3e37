"""The hash chain itself, with no database: entries, their hash, verification, JSON Lines.

``hash`` is SHA-256 over the canonical JSON of the entry's fields and ``prev_hash``. Anyone can
recompute it from an export with this module alone, or in another language from the rules in
``docs/compliance.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from avatarcast.errors import ComplianceError

__all__ = [
    "GENESIS",
    "AuditEntry",
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
