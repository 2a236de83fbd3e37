"""What the command modules share: the consoles, errors as exit codes, settings, a session."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from avatarcast.errors import AvatarcastError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from avatarcast.settings import Settings

__all__ = [
    "err",
    "fail",
    "out",
    "reported",
    "server_settings",
    "session_at",
    "setup_logging",
]

err = Console(stderr=True)
out = Console()


def fail(e: AvatarcastError | OSError) -> typer.Exit:
    """Print ``e`` as one line and give the exit to raise (code 2: the input was wrong)."""
    err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


@contextmanager
def reported() -> Iterator[None]:
    """Turn our errors, OS errors and database errors into one clear line and exit code 2."""
    try:
        yield
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
    except _db_error() as e:  # matched (and SQLAlchemy imported) only when something failed
        raise fail(_database_error(e)) from None


def _db_error() -> type[Exception]:
    """SQLAlchemy's error class. Imported lazily: it costs 0.15 CPU s, which every ``live``
    start (on a machine running many streams) would pay for nothing."""
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def server_settings(host: str | None, port: int | None) -> Settings:
    """Settings with ``--host``/``--port`` over the file and environment."""
    from avatarcast.settings import Settings

    try:
        settings = Settings()
    except (AvatarcastError, ValueError) as e:
        err.print(f"[bold red]error:[/] settings: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    given = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return settings.model_copy(update={"api": settings.api.model_copy(update=given)})


@contextmanager
def session_at(url: str) -> Iterator[Session]:
    """A database session on its own engine, disposed of afterwards (one-shot commands)."""
    from avatarcast.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _database_error(e: Exception) -> AvatarcastError:
    """A short message: the driver's own words, not SQLAlchemy's traceback (no bound values)."""
    from sqlalchemy.exc import DBAPIError

    cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    return AvatarcastError(f"database: {str(cause).splitlines()[0]}")


def setup_logging(verbose: bool) -> None:
    from avatarcast.logs import setup_logging as setup

    setup(logging.DEBUG if verbose else logging.INFO)
