"""What one app instance owns: settings, engine, sessions, the change hub, metrics, buckets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.control.hub import ProductChangeHub
from avatarcast.control.keycache import KeyCache
from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.ratelimit import TokenBuckets
from avatarcast.settings import Settings


@dataclass(eq=False, kw_only=True)
class AppContext:
    """``app.state.ctx``. Extensions (the StreamRunner) keep their objects in ``extras``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    hub: ProductChangeHub
    metrics: ControlMetrics
    buckets: TokenBuckets
    keys: KeyCache
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def local_database(self) -> bool:
        """SQLite: a query is an in-process call, not a round trip to a server."""
        return self.engine.dialect.name == "sqlite"
