"""Console sign-in sessions, kept on the server: the browser holds a random id and nothing else.

Sessions live in the database (``console_sessions``), so a restart signs nobody out and every
API process behind one address knows them. The id is stored only as its SHA-256, so a dump
of the table cannot be replayed as a cookie. A session names the API key it was opened with
(never the key's secret) and carries a CSRF token; it ends after ``idle_s`` without a request
or ``absolute_s`` after sign-in, whichever comes first, and ``sweep`` deletes ended ones.
The key itself is re-checked on every request (see ``console.auth``).

The methods do database I/O: call them from a thread. A session read within ``cache_s`` is
served from memory (each tab's event stream checks its session twice a second), and a
request moves ``last_seen`` on in the database at most once per ``touch_s``, so a session
ended in another process ends here within ``cache_s``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.db.models_console import ConsoleSessionRow

__all__ = ["ConsoleSession", "SessionStore"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSession:
    key_id: str
    tenant_id: str
    role: str
    supervisor_id: str | None
    csrf: str
    #: wall-clock seconds (the database keeps them as UTC times)
    created: float
    last_seen: float


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _of(row: ConsoleSessionRow) -> ConsoleSession:
    return ConsoleSession(
        key_id=row.key_id,
        tenant_id=row.tenant_id,
        role=row.role,
        supervisor_id=row.supervisor_id,
        csrf=row.csrf,
        created=row.created_at.timestamp(),
        last_seen=row.last_seen.timestamp(),
    )


class SessionStore:
    """Sessions by the hash of their id, in the database; see the module docstring."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        idle_s: float,
        absolute_s: float,
        cache_s: float = 1.0,
        touch_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = sessions
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.cache_s = cache_s
        #: how stale ``last_seen`` may be in the database: a tenth of the idle limit, at most 60 s
        self.touch_s = min(60.0, idle_s / 10) if touch_s is None else touch_s
        self._clock = clock
        #: digest -> (session, when it was read from the database, monotonic seconds)
        self._cache: dict[str, tuple[ConsoleSession, float]] = {}
        self._lock = threading.Lock()

    def _live(self, s: ConsoleSession, now: float) -> bool:
        return now - s.last_seen <= self.idle_s and now - s.created <= self.absolute_s

    def open(
        self, *, key_id: str, tenant_id: str, role: str, supervisor_id: str | None
    ) -> tuple[str, ConsoleSession]:
        """A new session and the id for the cookie (shown once, stored hashed)."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        session = ConsoleSession(
            key_id=key_id,
            tenant_id=tenant_id,
            role=role,
            supervisor_id=supervisor_id,
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
        )
        row = ConsoleSessionRow(
            id_hash=_digest(session_id),
            key_id=key_id,
            tenant_id=tenant_id,
            role=role,
            supervisor_id=supervisor_id,
            csrf=session.csrf,
            created_at=_at(now),
            last_seen=_at(now),
        )
        with self._db() as db:
            db.add(row)
            db.commit()
        return session_id, session

    def get(self, session_id: str | None, *, touch: bool = True) -> ConsoleSession | None:
        """The live session for a cookie value, else None (an ended one is deleted)."""
        if not session_id:
            return None
        digest, now, mono = _digest(session_id), self._clock(), time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and mono - cached[1] <= self.cache_s:
            session: ConsoleSession | None = cached[0]
            read_at = cached[1]
        else:
            with self._db() as db:
                row = db.get(ConsoleSessionRow, digest)
                session = _of(row) if row is not None else None
            read_at = mono
        if session is None or not self._live(session, now):
            if session is not None:
                self._forget(digest)
            with self._lock:
                self._cache.pop(digest, None)
            return None
        if touch and now - session.last_seen >= self.touch_s:
            with self._db() as db:
                db.execute(
                    update(ConsoleSessionRow)
                    .where(ConsoleSessionRow.id_hash == digest)
                    .values(last_seen=_at(now))
                )
                db.commit()
            session = replace(session, last_seen=now)
        with self._lock:
            self._cache[digest] = (session, read_at)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._forget(_digest(session_id))

    def close_key(self, key_id: str) -> int:
        """End every session opened with ``key_id`` (the key was revoked)."""
        with self._db() as db:
            gone = db.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.key_id == key_id))
            db.commit()
        with self._lock:
            for digest in [d for d, (s, _) in self._cache.items() if s.key_id == key_id]:
                del self._cache[digest]
        return int(gone.rowcount or 0)  # type: ignore[attr-defined]

    def sweep(self) -> int:
        """Delete the sessions that ended (idle or too old); returns how many."""
        now = self._clock()
        ended = or_(
            ConsoleSessionRow.last_seen < _at(now - self.idle_s),
            ConsoleSessionRow.created_at < _at(now - self.absolute_s),
        )
        with self._db() as db:
            gone = db.execute(delete(ConsoleSessionRow).where(ended))
            db.commit()
        with self._lock:
            self._cache = {d: c for d, c in self._cache.items() if self._live(c[0], now)}
        return int(gone.rowcount or 0)  # type: ignore[attr-defined]

    def count(self) -> int:
        with self._db() as db:
            return len(db.scalars(select(ConsoleSessionRow.id_hash)).all())

    def _forget(self, digest: str) -> None:
        with self._db() as db:
            db.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id_hash == digest))
            db.commit()
        with self._lock:
            self._cache.pop(digest, None)
