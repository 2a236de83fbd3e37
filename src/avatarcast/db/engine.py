"""Engines and sessions. Sync SQLAlchemy; FastAPI runs sync endpoints in its threadpool."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import SingletonThreadPool


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; creates the folder of a SQLite file and turns on its foreign keys."""
    url = normalise_url(url)
    parsed = make_url(url)
    # errors and logs never carry bound values: a destination's stream key is one of them
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _private_file(path: Path) -> None:
    """Make a new SQLite file 0600 in a 0700 folder: it holds hashes, stream keys (encrypted)
    and every tenant's data. SQLite gives its -wal and -shm files the same mode."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def make_loop_engine(url: str) -> Engine | None:
    """For a SQLite file, an engine of read-only connections, one per thread (the event loop
    uses one; see ``AppContext.read``); None for other databases and in-memory SQLite, where a
    second connection would not see the same data."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = make_engine(url, poolclass=SingletonThreadPool)
    event.listen(engine, "connect", _read_only)
    return engine


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on; a write-ahead log so readers never wait for a writer (nor it for them),
    and an fsync per checkpoint instead of per commit: a power cut may lose the last commits
    but never corrupts the file (https://sqlite.org/wal.html)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# SQLite reports a missing table or a syntax error as an OperationalError too: only these of
# its messages are a database a retry can reach.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open", "disk i/o")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (down, restarting, the
    connection cut, the pool exhausted, SQLite locked): a retry later can help. A bad query
    (SQLite's "no such table" included) or a constraint is not that."""
    if isinstance(exc, InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        if isinstance(exc.orig, sqlite3.Error):
            text = str(exc.orig).lower()
            return any(part in text for part in _SQLITE_TRANSIENT)
        return True
    return False


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
