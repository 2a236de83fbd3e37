"""Console sign-in sessions, kept on the server: the browser holds a random id and nothing else.

The id is stored only as its SHA-256, so a dump of the store cannot be replayed as a cookie.
A session names the API key it was opened with (never the key's secret) and carries a CSRF
token; it ends after ``idle_s`` without a request or ``absolute_s`` after sign-in, whichever
comes first. The key itself is re-checked on every request (see ``console.auth``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConsoleSession", "SessionStore"]


@dataclass(slots=True, kw_only=True)
class ConsoleSession:
    key_id: str
    tenant_id: str
    role: str
    supervisor_id: str | None
    csrf: str
    created: float
    last_seen: float


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions by the hash of their id. Thread-safe; expired sessions are dropped on access."""

    def __init__(
        self,
        *,
        idle_s: float,
        absolute_s: float,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

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
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                self._sweep(now)
                if len(self._sessions) >= self.max_sessions:  # full of live ones: oldest goes
                    oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
                    del self._sessions[oldest]
            self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, *, touch: bool = True) -> ConsoleSession | None:
        """The live session for a cookie value, else None (an expired one is dropped)."""
        if not session_id:
            return None
        digest = _digest(session_id)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                return None
            if now - session.last_seen > self.idle_s or now - session.created > self.absolute_s:
                del self._sessions[digest]
                return None
            if touch:
                session.last_seen = now
            return session

    def close(self, session_id: str | None) -> ConsoleSession | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.pop(_digest(session_id), None)

    def close_key(self, key_id: str) -> int:
        """End every session opened with ``key_id`` (the key was revoked)."""
        with self._lock:
            gone = [d for d, s in self._sessions.items() if s.key_id == key_id]
            for digest in gone:
                del self._sessions[digest]
            return len(gone)

    def _sweep(self, now: float) -> None:
        self._sessions = {
            d: s
            for d, s in self._sessions.items()
            if now - s.last_seen <= self.idle_s and now - s.created <= self.absolute_s
        }
