"""API key rows kept in memory for a few seconds, so most requests authenticate without a query.

Only what is needed to check a key is kept (its HMAC, tenant, role, supervisor, whether it is
revoked); the secret is still checked on every request, in constant time. Revoking a key or
deleting a tenant through this app forgets its entries at once. A change made elsewhere (a
second API process on the same PostgreSQL, a hand edit) is seen after at most ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from avatarcast.db.models import ApiKey


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    id: str
    tenant_id: str
    role: str
    secret_hash: str
    supervisor_id: str | None
    revoked: bool

    @classmethod
    def of(cls, row: ApiKey) -> KeyRecord:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            role=row.role,
            secret_hash=row.secret_hash,
            supervisor_id=row.supervisor_id,
            revoked=row.revoked_at is not None,
        )


class KeyCache:
    """Key records by key id for ``ttl_s`` seconds (0 turns the cache off). Thread-safe.

    A lookup that read the database before a ``forget`` must not put back what it read:
    every ``forget`` bumps a generation, and ``put`` only stores when it has not moved.
    """

    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, KeyRecord]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, key_id: str) -> KeyRecord | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            with self._lock:
                if self._entries.get(key_id) is entry:
                    del self._entries[key_id]
            return None
        return entry[1]

    def put(self, record: KeyRecord, *, generation: int) -> None:
        """Keep ``record`` unless something was forgotten since ``generation`` was read."""
        if self.ttl_s <= 0:
            return
        now = self._clock()
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[record.id] = (now + self.ttl_s, record)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._generation += 1
            self._entries.pop(key_id, None)

    def forget_tenant(self, tenant_id: str) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {k: e for k, e in self._entries.items() if e[1].tenant_id != tenant_id}

    def load(self, session: Session, key_id: str) -> KeyRecord | None:
        """The record from the cache, else from the database (and then cached)."""
        record = self.get(key_id)
        if record is not None:
            return record
        generation = self._generation
        row = session.get(ApiKey, key_id)
        if row is None:
            return None
        record = KeyRecord.of(row)
        self.put(record, generation=generation)
        return record
