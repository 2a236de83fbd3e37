"""The web console at ``/console``: operators and supervisors run the night shift in a browser.

Server-rendered Jinja2 pages with htmx (``static/htmx.min.js``, pinned and checksummed) and one
small ES module (``static/console.js``) for WHEP previews, live updates over one SSE
connection per tab, heartbeats and keyboard shortcuts. It calls the same functions as the
REST API, as the signed-in key, so it can do nothing the key could not do through ``/v1``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from avatarcast.console import actions, chat_sources, events, forms, pages
from avatarcast.console.auth import EXTRAS_KEY, Console, Forbidden, SignInRequired
from avatarcast.console.bus import EventBus
from avatarcast.console.fates import FateWatch
from avatarcast.console.relay import ConsoleRelay
from avatarcast.console.render import STATIC_DIR, flash, make_templates
from avatarcast.console.sessions import SessionStore
from avatarcast.control.context import AppContext
from avatarcast.control.leader import replica_id
from avatarcast.runner.base import StreamEvent

__all__ = ["ConsoleExtension", "install_console"]

log = logging.getLogger(__name__)


def install_console(app: FastAPI, ctx: AppContext) -> None:
    """Add the console's routes, static files and error pages; its lifespan joins the app's
    through ``ctx.extras["lifespans"]``."""
    settings = ctx.settings.console
    console = Console(
        ctx=ctx,
        sessions=SessionStore(
            ctx.sessions, idle_s=settings.session_idle_s, absolute_s=settings.session_absolute_s
        ),
        bus=EventBus(),
        templates=make_templates(),
    )
    ctx.extras[EXTRAS_KEY] = console
    for module in (pages, forms, chat_sources, actions, events):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_exception_handler(SignInRequired, _to_sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(Forbidden, _forbidden)  # type: ignore[arg-type]


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    """Feed the bus from the stream manager while the app runs, and follow pending chat
    messages until they settle (``FateWatch``)."""
    console: Console = ctx.extras[EXTRAS_KEY]
    console.bus.bind(asyncio.get_running_loop())
    manager = ctx.extras.get("streams")
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(_sweep_sessions(console))]
        if ctx.engine.dialect.name == "postgresql":  # replicas may share the database
            relay = ConsoleRelay(
                console.bus, database_url=ctx.settings.database_url, origin=replica_id()
            )
            console.bus.forward_to(relay.forward)
            tasks.append(tg.create_task(relay.run()))
        listeners: tuple[Callable[[StreamEvent], None], ...] = ()
        if manager is not None:
            fates = FateWatch(bus=console.bus, request=manager.runner.request)
            listeners = (console.bus.on_stream_event, fates.on_stream_event)
            manager.listeners.extend(listeners)
            tasks.append(tg.create_task(fates.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if manager is not None:
                for listener in listeners:
                    if listener in manager.listeners:
                        manager.listeners.remove(listener)


async def _sweep_sessions(console: Console, every_s: float = 60.0) -> None:
    """Delete ended sign-in sessions now and then (each is refused on its own anyway)."""
    while True:
        try:
            await asyncio.to_thread(console.sessions.sweep)
        except Exception:
            log.exception("sweeping console sessions failed")
        await asyncio.sleep(every_s)


def _wants_fragment(request: Request) -> bool:
    return "hx-request" in request.headers or request.url.path.endswith(("/events", "/heartbeat"))


async def _to_sign_in(request: Request, error: SignInRequired) -> Response:
    target = "/console/sign-in"
    if error.reason:
        target += "?reason=" + quote(error.reason)
    if _wants_fragment(request) or request.method != "GET":
        return Response(error.reason or "sign in", status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _forbidden(request: Request, error: Forbidden) -> HTMLResponse:
    return flash(request, str(error), ok=False, status=403)


class ConsoleExtension:
    """The console as an extension of the control plane's app (``control.app.AppExtension``)."""

    def install(self, app: FastAPI, ctx: AppContext) -> None:
        install_console(app, ctx)

    def lifespan(self, ctx: AppContext) -> AbstractAsyncContextManager[None]:
        return lifespan(ctx)
