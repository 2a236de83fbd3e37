"""The control plane's database: models, engines, and migrations."""

from avatarcast.control.db.base import Base, utcnow
from avatarcast.control.db.engine import make_engine, make_sessionmaker, normalise_url
from avatarcast.control.db.migrate import current_revision, upgrade_database
from avatarcast.control.db.models import ApiKey, Destination, Event, ProductRow, Tenant

__all__ = [
    "ApiKey",
    "Base",
    "Destination",
    "Event",
    "ProductRow",
    "Tenant",
    "current_revision",
    "make_engine",
    "make_sessionmaker",
    "normalise_url",
    "upgrade_database",
    "utcnow",
]
