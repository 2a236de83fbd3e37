"""Alembic environment. The URL comes from the caller (``upgrade_database``) or from Settings."""

from __future__ import annotations

from alembic import context

from avatarcast.db import (
    models,
    models_audit,
    models_chat,
    models_console,
    models_streams,
    models_webhooks,
)
from avatarcast.db.base import Base
from avatarcast.db.engine import make_engine

# the modules that declare tables: importing them puts every table on Base.metadata
_TABLE_MODULES = (
    models,
    models_audit,
    models_streams,
    models_console,
    models_webhooks,
    models_chat,
)

target_metadata = Base.metadata
config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from avatarcast.settings import Settings  # the alembic CLI: read settings like the app

    return Settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,  # SQLite needs table copies for ALTER
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
