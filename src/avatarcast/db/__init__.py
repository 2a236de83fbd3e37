"""The database: declarative models of the control plane and the audit log, engines, migrations."""

from avatarcast.db.base import Base, utcnow
from avatarcast.db.engine import make_engine, make_sessionmaker, normalise_url
from avatarcast.db.migrate import current_revision, upgrade_database
from avatarcast.db.models import ApiKey, Destination, Event, ProductRow, Tenant
from avatarcast.db.models_console import ConsoleSessionRow
from avatarcast.db.models_limits import RateBucket

__all__ = [
    "ApiKey",
    "Base",
    "ConsoleSessionRow",
    "Destination",
    "Event",
    "ProductRow",
    "RateBucket",
    "Tenant",
    "current_revision",
    "make_engine",
    "make_sessionmaker",
    "normalise_url",
    "upgrade_database",
    "utcnow",
]
