"""The control plane: a FastAPI app over tenants, keys, products, destinations and events."""

from avatarcast.control.app import ROUTE_MODULES, create_app
from avatarcast.control.bootstrap import bootstrap_admin_key, create_key
from avatarcast.control.context import AppContext
from avatarcast.control.hub import ProductChange, ProductChangeHub
from avatarcast.control.metrics import ControlMetrics
from avatarcast.db.migrate import upgrade_database

__all__ = [
    "ROUTE_MODULES",
    "AppContext",
    "ControlMetrics",
    "ProductChange",
    "ProductChangeHub",
    "bootstrap_admin_key",
    "create_app",
    "create_key",
    "upgrade_database",
]
