"""``avatarcast demo``: the whole server on loopback with one stream live, nothing to set up.

It migrates the database, gives a ``demo`` tenant a fresh operator key, imports the demo
catalog, marks a recorded ``demo`` stream live, and serves the API; the app's lifespan starts
the stream like any stream that should be live. Ctrl-C stops uvicorn, whose shutdown drains
the stream workers.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from sqlalchemy import select

from avatarcast.avatar.pack import list_packs
from avatarcast.catalog.loaders import load_catalog
from avatarcast.control.app import create_app
from avatarcast.control.bootstrap import create_key
from avatarcast.db import products as product_repo
from avatarcast.db.base import utcnow
from avatarcast.db.engine import make_engine, make_sessionmaker
from avatarcast.db.events import record_event
from avatarcast.db.migrate import upgrade_database
from avatarcast.db.models_streams import StreamRow
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
        tenant_id, key = create_key(
            sessions, tenant_name=DEMO_TENANT, role="operator", key_name="demo"
        )
        with sessions() as session:
            product_repo.upsert(session, tenant_id, products)
            query = select(StreamRow).where(
                StreamRow.tenant_id == tenant_id, StreamRow.name == DEMO_STREAM
            )
            row = session.scalar(query)
            if row is None:
                packs = list_packs()
                row = StreamRow(
                    id=secrets.token_hex(8),
                    tenant_id=tenant_id,
                    name=DEMO_STREAM,
                    product_ids=None,
                    avatar=packs[0] if packs else "default",
                    voice=default_voice_for(lang),
                    lang=lang,
                    writer="template",
                    destination_ids=[],
                    record=True,
                    whep_token=secrets.token_urlsafe(24),
                    created_at=utcnow(),
                )
                session.add(row)
            row.desired_state, row.updated_at = "live", utcnow()
            record_event(session, tenant_id=tenant_id, stream_id=row.id, kind="demo-start")
            session.commit()
            return Prepared(
                stream_id=row.id, whep_token=row.whep_token, api_key=key, products=len(products)
            )
    finally:
        engine.dispose()


async def serve_demo(
    settings: Settings,
    *,
    catalog: Path = DEMO_CATALOG,
    on_ready: Callable[[DemoInfo], None] | None = None,
) -> None:
    """Serve until interrupted; ``on_ready`` gets the URLs once the server listens."""
    demo = prepare_demo(settings, catalog=catalog)
    host, port = settings.api.host, settings.api.port
    config = uvicorn.Config(
        create_app(settings, freeze_gc=True),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
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
