"""Alembic, driven from code: the app factory and ``avatarcast db upgrade`` call this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from avatarcast.db.engine import make_engine, normalise_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


#: PostgreSQL advisory lock held while migrating ("avmigr"), so API replicas starting at once
#: upgrade one after the other instead of racing to create the same tables.
MIGRATE_LOCK = 0x6176_6D69_6772


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (creates the SQLite folder if needed)."""
    engine = make_engine(url)  # creates the SQLite folder
    try:
        if engine.dialect.name != "postgresql":
            command.upgrade(alembic_config(url), revision)
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK})
            try:
                command.upgrade(alembic_config(url), revision)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK})
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
