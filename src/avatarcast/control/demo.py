"""``avatarcast demo``: the whole server on loopback with one stream live, nothing to set up.

It migrates the database, gives a ``demo`` tenant a "Demo supervisor" and a fresh operator key
linked to that supervisor (one key that both operates and supervises the demo tenant; an
operator key alone may not act as the human supervisor), imports the demo catalog, puts the
demo supervisor on duty, marks a recorded ``demo`` stream live, and serves the API; the app's
lifespan starts the stream like any stream that should be live. Ctrl-C stops uvicorn, whose
shutdown drains the stream workers.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.avatar.pack import default_pack
from avatarcast.catalog.loaders import load_catalog
from avatarcast.control.app import create_app
from avatarcast.control.bootstrap import create_key
from avatarcast.db import products as product_repo
from avatarcast.db.base import utcnow
from avatarcast.db.engine import make_engine, make_sessionmaker
from avatarcast.db.events import record_event
from avatarcast.db.migrate import upgrade_database
from avatarcast.db.models import Tenant
from avatarcast.db.models_streams import StreamRow, SupervisorRow
from avatarcast.errors import ConfigError
from avatarcast.settings import Settings
from avatarcast.voice.registry import default_voice_for

__all__ = ["DEMO_CATALOG", "DemoInfo", "Prepared", "prepare_demo", "serve_demo"]

#: the demo catalog in the working folder, else the one in the source tree
DEMO_CATALOG = Path("configs/demo-catalog.json")
if not DEMO_CATALOG.exists():
    DEMO_CATALOG = Path(__file__).resolve().parents[3] / "configs" / "demo-catalog.json"
DEMO_TENANT = "demo"
DEMO_STREAM = "demo"
DEMO_SUPERVISOR = "Demo supervisor"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoInfo:
    """What the demo prints: where to look, and the key to use (shown once)."""

    api_url: str
    docs_url: str
    player_url: str
    stream_id: str
    api_key: str
    products: int
    recordings_dir: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    stream_id: str
    whep_token: str
    api_key: str
    products: int


def prepare_demo(settings: Settings, *, catalog: Path, lang: str = "en") -> Prepared:
    """A demo tenant with a fresh key, the catalog, and a recorded stream that should be live."""
    if not catalog.is_file():
        raise ConfigError(f"demo catalog {str(catalog)!r} not found; run from the repository")
    products = load_catalog(catalog)
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        supervisor_id = _demo_supervisor(sessions)
        tenant_id, key = create_key(
            sessions,
            tenant_name=DEMO_TENANT,
            role="operator",
            key_name="demo",
            supervisor_id=supervisor_id,
        )
        with sessions() as session:
            product_repo.upsert(session, tenant_id, products)
            query = select(StreamRow).where(
                StreamRow.tenant_id == tenant_id, StreamRow.name == DEMO_STREAM
            )
            row = session.scalar(query)
            if row is None:
                row = StreamRow(
                    id=secrets.token_hex(8),
                    tenant_id=tenant_id,
                    name=DEMO_STREAM,
                    product_ids=None,
                    avatar=default_pack() or "default",  # the drawn presenter, never a twin
                    voice=default_voice_for(lang),
                    lang=lang,
                    writer="template",
                    destination_ids=[],
                    record=True,
                    whep_token=secrets.token_urlsafe(24),
                    created_at=utcnow(),
                )
                session.add(row)
            now = utcnow()
            # on duty, but no heartbeat yet: the stream waits on its slate until a person signs
            # in to the console and the wall's heartbeats start (or one is sent through the API)
            row.duty_supervisor_id, row.duty_since, row.heartbeat_at = supervisor_id, now, None
            row.desired_state, row.updated_at = "live", now
            record_event(session, tenant_id=tenant_id, stream_id=row.id, kind="demo-start")
            session.commit()
            return Prepared(
                stream_id=row.id, whep_token=row.whep_token, api_key=key, products=len(products)
            )
    finally:
        engine.dispose()


def _demo_supervisor(sessions: sessionmaker[Session]) -> str:
    """The demo tenant's supervisor record (tenant and record made on first use)."""
    tenant_query = select(Tenant).where(Tenant.name == DEMO_TENANT)
    with sessions() as session:
        tenant = session.scalar(tenant_query)
        if tenant is None:
            tenant = Tenant(id=secrets.token_hex(8), name=DEMO_TENANT)
            session.add(tenant)
            session.flush()
        query = select(SupervisorRow).where(
            SupervisorRow.tenant_id == tenant.id, SupervisorRow.full_name == DEMO_SUPERVISOR
        )
        row = session.scalar(query)
        if row is None:
            row = SupervisorRow(
                id=secrets.token_hex(8),
                tenant_id=tenant.id,
                full_name=DEMO_SUPERVISOR,
                contact="demo@localhost",
                reference="demo",
            )
            session.add(row)
        session.commit()
        return row.id


async def serve_demo(
    settings: Settings,
    *,
    catalog: Path = DEMO_CATALOG,
    on_ready: Callable[[DemoInfo], None] | None = None,
    make_app: Callable[..., FastAPI] = create_app,
) -> None:
    """Serve until interrupted; ``on_ready`` gets the URLs once the server listens.
    ``make_app``: the app factory (the CLI passes the one with the console)."""
    demo = prepare_demo(settings, catalog=catalog)
    host, port = settings.api.host, settings.api.port
    config = uvicorn.Config(
        make_app(settings, freeze_gc=True),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ws_max_size=settings.chat.max_frame_bytes,
    )
    server = uvicorn.Server(config)
    base = f"http://{host}:{port}"

    async def announce() -> None:
        while not server.started and not server.should_exit:  # noqa: ASYNC110 - a flag only
            await asyncio.sleep(0.1)
        if server.started and on_ready is not None:
            on_ready(
                DemoInfo(
                    api_url=base,
                    docs_url=f"{base}/docs",
                    player_url=f"{base}/v1/streams/{demo.stream_id}/player?token={demo.whep_token}",
                    stream_id=demo.stream_id,
                    api_key=demo.api_key,
                    products=demo.products,
                    recordings_dir=settings.recordings_dir.resolve(),
                )
            )

    async with asyncio.TaskGroup() as tg:
        tg.create_task(announce())
        await server.serve()
