"""What one app instance owns: settings, engine, sessions, the change hub, metrics, buckets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.compliance.disclosure import DisclosureTerms
from avatarcast.control.hub import ProductChangeHub
from avatarcast.control.keycache import KeyCache
from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.ratelimit import RateLimiter
from avatarcast.control.secretbox import SecretBox
from avatarcast.settings import Settings

T = TypeVar("T")


@dataclass(eq=False, kw_only=True)
class AppContext:
    """``app.state.ctx``. Extensions (the StreamRunner) keep their objects in ``extras``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    hub: ProductChangeHub
    metrics: ControlMetrics
    #: the API keys' rate limit (shared through PostgreSQL when the database is one)
    buckets: RateLimiter
    keys: KeyCache
    #: The AI disclosure term(s) per language an AI label's text must contain.
    disclosure: DisclosureTerms
    #: Seals and opens secrets stored in the database (destination stream keys).
    secrets: SecretBox
    #: Sessions on a connection of the event loop's own, for ``read`` (SQLite files only).
    loop_sessions: sessionmaker[Session] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    async def read(self, query: Callable[[Session], T]) -> T:
        """``query(session)`` in a session of its own, closed before this returns.

        For short reads on the hot paths. On SQLite the query runs right here on the event
        loop: a row from a local file takes microseconds, while the threadpool costs two thread
        hand-offs, which were most of a small GET's CPU under load. The loop's connection is
        its own and read-only, so a read never waits for a pooled connection held by a
        threadpool request, and in WAL mode never for a writer. Elsewhere it is the threadpool.
        """
        if self.loop_sessions is None:
            return await run_in_threadpool(_run, self.sessions, query)
        return _run(self.loop_sessions, query)

    @property
    def local_database(self) -> bool:
        """SQLite: a query is an in-process call, not a round trip to a server."""
        return self.engine.dialect.name == "sqlite"


def _run(factory: sessionmaker[Session], query: Callable[[Session], T]) -> T:
    with factory() as session:
        return query(session)
