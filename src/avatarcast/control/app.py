"""The app factory. Routers come from ``ROUTE_MODULES``; lifespans from ``LIFESPANS``.

To add a resource: write ``control/routes/<name>.py`` with a module-level
``router = APIRouter(prefix="/v1/<name>", ...)`` and list it in ``ROUTE_MODULES``. What must
start and stop with the app (the stream runner) is a ``Lifespan`` in ``LIFESPANS``; it can keep
objects in ``ctx.extras``.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import ModuleType
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from avatarcast.compliance.disclosure import load_terms
from avatarcast.control.chatting import lifespan as chat_sources_lifespan
from avatarcast.control.context import AppContext
from avatarcast.control.dbwatch import lifespan as database_watch_lifespan
from avatarcast.control.guard import RequestGuardMiddleware
from avatarcast.control.hub import ProductChangeHub
from avatarcast.control.keycache import KeyCache
from avatarcast.control.lifecycle import lifespan as lifecycle_lifespan
from avatarcast.control.metrics import ControlMetrics, LatencyMiddleware
from avatarcast.control.problems import (
    PROBLEM_MEDIA_TYPE,
    UnhandledErrorMiddleware,
    install_problem_handlers,
)
from avatarcast.control.ratelimit import RateLimiter, TokenBuckets
from avatarcast.control.ratelimit_shared import SharedTokenBuckets
from avatarcast.control.routes.schedules import lifespan as schedules_lifespan
from avatarcast.control.secretbox import load_box, reseal_stream_keys
from avatarcast.control.shedding import LoadSheddingMiddleware
from avatarcast.control.streaming import lifespan as streams_lifespan
from avatarcast.control.webhooks.dispatcher import lifespan as webhooks_lifespan
from avatarcast.db.engine import make_engine, make_loop_engine, make_sessionmaker
from avatarcast.db.migrate import upgrade_database
from avatarcast.settings import Settings

#: Route modules under ``avatarcast.control.routes``, in the order of the OpenAPI document.
ROUTE_MODULES: tuple[str, ...] = (
    "health",
    "tenants",
    "tenant_seller",
    "keys",
    "products",
    "product_images",
    "destinations",
    "avatars",
    "voices",
    "supervisors",
    "streams",
    "stream_supervision",
    "stream_chat",
    "chat_sources",
    "stream_session",
    "stream_whep",
    "stream_hls",
    "schedules",
    "events",
    "webhooks",
    "audit",
)

Lifespan = Callable[[AppContext], AbstractAsyncContextManager[None]]


class AppExtension(Protocol):
    """A part of the server above the control plane (the console): it adds its routes to the
    app, and runs beside it for the app's life, after the stream runner has started."""

    def install(self, app: FastAPI, ctx: AppContext) -> None: ...

    def lifespan(self, ctx: AppContext) -> AbstractAsyncContextManager[None]: ...


#: What runs for the app's life beside the routes, in this order: the webhook dispatcher (it
#: hears every stream event from the first restored stream on), the stream runner and its
#: manager (restoring the streams that should be live), the schedule's ticker, the platform
#: chat sources, then the lifecycle (SIGTERM drain, systemd READY=1 and watchdog). The
#: database watch comes after the manager: it tells the streams when the database goes.
LIFESPANS: tuple[Lifespan, ...] = (
    webhooks_lifespan,
    streams_lifespan,
    database_watch_lifespan,
    schedules_lifespan,
    chat_sources_lifespan,
    lifecycle_lifespan,
)


def load_route_modules() -> list[ModuleType]:
    return [importlib.import_module(f"avatarcast.control.routes.{name}") for name in ROUTE_MODULES]


def create_app(
    settings: Settings,
    *,
    hub: ProductChangeHub | None = None,
    metrics: ControlMetrics | None = None,
    freeze_gc: bool = False,
    extensions: Sequence[AppExtension] = (),
) -> FastAPI:
    """A ready-to-serve app; the database is migrated on startup unless switched off.

    ``freeze_gc``: for the process that serves this one app for its life (``serve``,
    ``demo``), see ``_freeze_startup_objects``; not for a test run that makes many apps.
    ``extensions``: parts above the control plane (``avatarcast.server`` adds the console).
    """
    engine = make_engine(settings.database_url)
    loop_engine = make_loop_engine(settings.database_url)
    ctx = AppContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        loop_sessions=make_sessionmaker(loop_engine) if loop_engine is not None else None,
        hub=hub or ProductChangeHub(),
        metrics=metrics or ControlMetrics(),
        buckets=_key_buckets(settings, engine),
        keys=KeyCache(ttl_s=settings.api.key_cache_s),
        disclosure=load_terms(settings.stream.ai_disclosure_terms),
        secrets=load_box(settings.secrets, database_url=settings.database_url),
    )
    modules = load_route_modules()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.api.migrate_on_start:
            await run_in_threadpool(upgrade_database, settings.database_url)
        await run_in_threadpool(reseal_stream_keys, ctx.sessions, ctx.secrets)
        try:
            async with AsyncExitStack() as stack:
                for extension in LIFESPANS:
                    await stack.enter_async_context(extension(ctx))
                for part in extensions:  # after the runner: they listen to its manager
                    await stack.enter_async_context(part.lifespan(ctx))
                if freeze_gc:
                    _freeze_startup_objects()
                yield
        finally:
            engine.dispose()
            if loop_engine is not None:
                loop_engine.dispose()

    app = FastAPI(
        title="avatarcast control plane",
        version="1",
        lifespan=lifespan,
        description="Tenants, keys, products, destinations and stream events. "
        "Errors are RFC 9457 problem details.",
    )
    app.state.ctx = ctx
    for module in modules:
        router: APIRouter = module.router
        app.include_router(router)
    for part in extensions:
        part.install(app, ctx)
    install_problem_handlers(app)
    app.add_middleware(RequestGuardMiddleware, limit=settings.api.body_limit_bytes)
    shedding = settings.api.load_shedding
    app.add_middleware(
        LoadSheddingMiddleware,
        running=shedding.running,
        waiting=shedding.waiting,
        wait_s=shedding.wait_s,
        control=shedding.control,
        metrics=ctx.metrics,
    )
    app.add_middleware(LatencyMiddleware, metrics=ctx.metrics)
    app.add_middleware(UnhandledErrorMiddleware)
    _problem_media_type_in_openapi(app)
    return app


def _key_buckets(settings: Settings, engine: Engine) -> RateLimiter:
    """Per key, shared by every replica on PostgreSQL; in memory on SQLite (one process)."""
    limit = settings.api.rate_limit
    if engine.dialect.name == "postgresql":
        return SharedTokenBuckets(engine, rate=limit.rate, burst=limit.burst)
    return TokenBuckets(rate=limit.rate, burst=limit.burst)


def _freeze_startup_objects() -> None:
    """Keep what start-up made (modules, the app, its routes: ~170 000 objects) out of
    Python's full collections. Those scan every tracked object and took 80-140 ms each under
    load, a pause every minute or so that held every request in flight; the objects live as
    long as the process anyway. What is made later is collected as before."""
    gc.collect()
    gc.freeze()


def _problem_media_type_in_openapi(app: FastAPI) -> None:
    """FastAPI documents every response as application/json; errors are problem+json."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[:1] in "45" and "application/json" in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
