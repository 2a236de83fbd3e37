"""The whole server: the control plane's API with the web console on top.

The console stands above the control plane (it calls its routes and reads its stream manager),
so the control plane cannot import it; this module, one layer up, puts the two together for
``serve`` and ``demo``.
"""

from __future__ import annotations

from fastapi import FastAPI

from avatarcast.console import ConsoleExtension
from avatarcast.control.app import create_app
from avatarcast.settings import Settings

__all__ = ["create_server_app"]


def create_server_app(settings: Settings, *, freeze_gc: bool = False) -> FastAPI:
    """The API plus the console at ``/console``, as ``avatarcast serve`` runs it."""
    return create_app(settings, freeze_gc=freeze_gc, extensions=(ConsoleExtension(),))
