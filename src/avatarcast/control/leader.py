"""Which API process runs the scheduler when several share one database.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own, kept
open for as long as it leads. The server drops the lock the moment that session ends, so a
leader killed with SIGKILL (its socket closed by the kernel) frees it at once, and a follower
that tries ``pg_try_advisory_lock`` on its next tick takes over. A leader that loses its
connection (database restart, network) stops leading until it wins the lock again.

On SQLite the database is a file of one host, and each process runs its own scheduler, as
before: the unique ``schedule_runs`` row still opens a window once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["LEADERSHIP_KEY", "LOCK_KEY", "Leadership", "replica_id"]

log = logging.getLogger(__name__)

#: Where the app keeps its :class:`Leadership` (``AppContext.extras``).
LEADERSHIP_KEY = "scheduler_leadership"
#: The advisory lock's key: any 64-bit number no other part of the database uses ("avsched").
LOCK_KEY = 0x61767363686564


def replica_id() -> str:
    """This process among the API's replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """``await acquire()`` each tick: True while this process is the scheduler's leader."""

    def __init__(self, engine: Engine, *, replica: str, key: int = LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self.replica = replica
        self._conn: Connection | None = None
        #: None until the first try; then whether this process leads
        self.leader: bool | None = None

    @property
    def shared(self) -> bool:
        """Whether other processes may share the database (PostgreSQL)."""
        return self._engine.dialect.name == "postgresql"

    async def acquire(self) -> bool:
        """Keep or win the lock; says whether this process leads now."""
        leads = await asyncio.to_thread(self._try) if self.shared else True
        if leads != self.leader:
            role = "leader" if leads else "follower"
            log.warning("scheduler: replica %s is now the %s", self.replica, role)
            self.leader = leads
        return leads

    def _try(self) -> bool:
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1"))  # still our session, so still our lock
                return True
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
                if got.scalar():
                    self._conn = conn
                    return True
            except BaseException:
                conn.close()
                raise
            conn.close()
            return False
        except SQLAlchemyError as e:
            log.warning("scheduler: leadership check failed: %s", type(e).__name__)
            self._drop()
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()  # never back to the pool with the lock on it
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None

    async def release(self) -> None:
        """Give up leading (at shutdown): closing the session frees the lock at once."""
        await asyncio.to_thread(self._drop)
        self.leader = None
