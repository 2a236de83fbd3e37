"""Server commands: the API, its keys and database, and the one-command demo."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from avatarcast.cli_support import err, fail, out, server_settings, setup_logging
from avatarcast.errors import AvatarcastError

__all__ = ["db_app", "demo", "keys_app", "serve"]

HostOpt = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v")]


def serve(host: HostOpt = None, port: PortOpt = None, verbose: VerboseOpt = False) -> None:
    """Serve the control plane API; streams that should be live start again. SIGTERM drains
    them first (recordings closed, /readyz 503), a second SIGTERM or SIGINT exits at once."""
    import uvicorn

    from avatarcast.control.lifecycle import DrainingServer
    from avatarcast.server import create_server_app

    setup_logging(verbose)
    settings = server_settings(host, port)
    config = uvicorn.Config(
        create_server_app(settings, freeze_gc=True),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=settings.api.access_log or verbose,
        ws_max_size=settings.chat.max_frame_bytes,
    )
    DrainingServer(config).run()


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
db_app = typer.Typer(help="The control plane database.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name; created if missing.")],
    role: Annotated[
        str, typer.Option("--role", help="admin, operator, supervisor or backend.")
    ] = "operator",
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "",
) -> None:
    """Print a new API key. It is shown this once; only its hash is stored."""
    from avatarcast.control import create_key, upgrade_database
    from avatarcast.db import make_engine, make_sessionmaker

    settings = server_settings(None, None)
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        _, key = create_key(make_sessionmaker(engine), tenant_name=tenant, role=role, key_name=name)
    except ValueError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(code=2) from None
    finally:
        engine.dispose()
    out.print(key, highlight=False, soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (the server also does this when it starts)."""
    from avatarcast.control import upgrade_database
    from avatarcast.db import current_revision

    url = server_settings(None, None).database_url
    upgrade_database(url)
    out.print(f"database at revision {current_revision(url)}", highlight=False)


def demo(host: HostOpt = None, port: PortOpt = None, verbose: VerboseOpt = False) -> None:
    """Serve the API on loopback with the demo catalog and one live, recorded demo stream."""
    from avatarcast.control.demo import DemoInfo, serve_demo
    from avatarcast.server import create_server_app

    setup_logging(verbose)
    settings = server_settings(host or "127.0.0.1", port)

    def ready(info: DemoInfo) -> None:
        out.print(
            f"avatarcast demo: {info.products} products, stream {info.stream_id} going live\n"
            f"  console     {info.api_url}/console  (sign in with the API key below)\n"
            f"  player      {info.player_url}\n"
            f"  API docs    {info.docs_url}\n"
            f"  API key     {info.api_key}  (operator and the demo supervisor; shown once)\n"
            f"  status      curl -H 'Authorization: Bearer {info.api_key}' "
            f"{info.api_url}/v1/streams/{info.stream_id}\n"
            f"  recordings  {info.recordings_dir}\n"
            "Ctrl-C stops.",
            highlight=False,
            soft_wrap=True,
        )

    try:
        asyncio.run(serve_demo(settings, on_ready=ready, make_app=create_server_app))
    except KeyboardInterrupt:
        pass
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
