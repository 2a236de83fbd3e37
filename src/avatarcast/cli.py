"""The ``avatarcast`` command line. Only this module and the app factory read Settings."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from avatarcast.errors import AvatarcastError

if TYPE_CHECKING:
    from avatarcast.script.llm import LlmOptions
    from avatarcast.settings import Settings

app = typer.Typer(
    name="avatarcast",
    help="Open server for 24/7 AI-avatar live selling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

CatalogOpt = Annotated[
    Path, typer.Option("--catalog", help="Catalog file (.json or .csv).", show_default=False)
]
LangOpt = Annotated[str, typer.Option("--lang", help="Language of the talk: en or nl.")]
AvatarOpt = Annotated[str | None, typer.Option("--avatar", help="Avatar pack name.")]
VoiceOpt = Annotated[str | None, typer.Option("--voice", help="Voice name (see `voices`).")]
WriterOpt = Annotated[str, typer.Option("--writer", help="Script writer: template or llm.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed: same seed, same output.")]
SizeOpt = Annotated[str, typer.Option("--size", help="Frame size: 720p or 1080p.")]
FpsOpt = Annotated[int, typer.Option("--fps", help="Frames per second: 25 or 30.")]


def _fail(e: AvatarcastError | OSError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


def _llm_options(writer: str) -> LlmOptions | None:
    """The model endpoint from settings (``[llm]``, ``AVATARCAST_LLM__*``) for ``--writer llm``."""
    if writer != "llm":
        return None
    from avatarcast.script.llm import LlmOptions
    from avatarcast.settings import Settings

    try:
        llm = Settings().llm
    except (AvatarcastError, ValueError) as e:
        err.print(f"[bold red]error:[/] settings: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    return LlmOptions(
        base_url=llm.base_url,
        model=llm.model,
        api_key=llm.api_key.get_secret_value() or "unused",
        request_timeout=llm.timeout_s,
    )


def _setup_logging(verbose: bool) -> None:
    from avatarcast.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO)


@app.command()
def render(
    catalog: CatalogOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Output .mp4 file.")],
    duration: Annotated[float, typer.Option("--duration", help="Seconds of programme.")] = 60.0,
    lang: LangOpt = "en",
    avatar: AvatarOpt = None,
    voice: VoiceOpt = None,
    writer: WriterOpt = "template",
    seed: SeedOpt = 0,
    size: SizeOpt = "720p",
    fps: FpsOpt = 25,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Write spoken sentences as JSON Lines.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Render the catalog's programme offline, as fast as the machine allows."""
    from avatarcast.pipeline.build import ProgrammeOptions
    from avatarcast.pipeline.render import render_file

    _setup_logging(verbose)
    opts = ProgrammeOptions(
        catalog_path=catalog,
        lang=lang,
        avatar=avatar,
        voice=voice,
        writer=writer,
        llm=_llm_options(writer),
        seed=seed,
        size=size,
        fps=fps,
    )
    try:
        result = asyncio.run(
            render_file(
                opts,
                out=out_path,
                duration=duration,
                transcript=transcript,
                progress=not quiet and sys.stderr.isatty(),
            )
        )
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    out.print(
        f"wrote {result.out} ({result.frames} frames, {result.sentences} sentences, "
        f"{result.fps_wall:.0f} fps)",
        highlight=False,
    )


@app.command()
def replay(
    session: Annotated[Path, typer.Argument(help="Session file (.jsonl).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .mp4 file.")],
    report: Annotated[Path, typer.Option("--report", help="Health report (.json).")],
    transcript: Annotated[Path | None, typer.Option("--transcript")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Replay a recorded session on a simulated clock and report measured health."""
    from avatarcast.pipeline.render import replay_session

    _setup_logging(verbose)
    try:
        rep = asyncio.run(
            replay_session(session, out=out_path, report=report, transcript=transcript)
        )
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    out.print(json.dumps(rep["summary"], indent=2), highlight=False)


@app.command()
def live(
    catalog: CatalogOpt,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="RTMP/RTMPS destination URL with its key (repeatable)."),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Folder for the segmented MP4 recording.")
    ] = None,
    whep_port: Annotated[
        int | None, typer.Option("--whep-port", help="Serve WHEP at http://127.0.0.1:PORT/whep.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Seconds on air (default: until Ctrl-C).")
    ] = None,
    lang: LangOpt = "en",
    avatar: AvatarOpt = None,
    voice: VoiceOpt = None,
    writer: WriterOpt = "template",
    seed: SeedOpt = 0,
    size: SizeOpt = "720p",
    fps: FpsOpt = 25,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", help="Length of recording segments.")
    ] = 600.0,
    start_at: Annotated[
        float, typer.Option("--start-at", help="Media time of the first frame, in seconds.")
    ] = 0.0,
    status_json: Annotated[
        bool, typer.Option("--status-json", help="Print status as JSON lines on stdout.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Go live: RTMP/RTMPS destinations, WHEP viewers and a recording, from one encode."""
    from avatarcast.pipeline.build import ProgrammeOptions
    from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live

    _setup_logging(verbose)
    opts = LiveOptions(
        programme=ProgrammeOptions(
            catalog_path=catalog,
            lang=lang,
            avatar=avatar,
            voice=voice,
            writer=writer,
            llm=_llm_options(writer),
            seed=seed,
            size=size,
            fps=fps,
        ),
        destinations=tuple(to or ()),
        record_dir=record,
        segment_seconds=segment_seconds,
        whep_port=whep_port,
        duration=duration,
        start_at=start_at,
    )
    control = LiveControl()

    def on_status(status: dict[str, object]) -> None:
        if status_json:
            sys.stdout.write(json.dumps(status) + "\n")
            sys.stdout.flush()

    async def main() -> None:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, control.stop)
        await run_live(opts, control=control, on_status=on_status if status_json else None)

    try:
        asyncio.run(main())
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None


@app.command()
def avatars() -> None:
    """List installed avatar packs."""
    from avatarcast.avatar.pack import list_packs, load_pack

    for name in list_packs():
        pack = load_pack(name)
        out.print(f"{name}\t{pack.display_name}", highlight=False)


@app.command()
def voices() -> None:
    """List installed voices."""
    from avatarcast.voice.registry import list_voices

    for v in list_voices():
        kind = "offline" if v.offline else "network"
        out.print(f"{v.name}\t{v.engine}\t{','.join(v.languages)}\t{kind}", highlight=False)


HostOpt = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v")]


def _server_settings(host: str | None, port: int | None) -> Settings:
    """Settings with ``--host``/``--port`` over the file and environment."""
    from avatarcast.settings import Settings

    try:
        settings = Settings()
    except (AvatarcastError, ValueError) as e:
        err.print(f"[bold red]error:[/] settings: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    given = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return settings.model_copy(update={"api": settings.api.model_copy(update=given)})


@app.command()
def serve(host: HostOpt = None, port: PortOpt = None, verbose: VerboseOpt = False) -> None:
    """Serve the control plane API; streams that should be live start again."""
    import uvicorn

    from avatarcast.control import create_app

    _setup_logging(verbose)
    settings = _server_settings(host, port)
    uvicorn.run(
        create_app(settings), host=settings.api.host, port=settings.api.port, log_config=None
    )


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="The control plane database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


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
    from avatarcast.control.db import make_engine, make_sessionmaker

    settings = _server_settings(None, None)
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
    from avatarcast.control.db import current_revision

    url = _server_settings(None, None).database_url
    upgrade_database(url)
    out.print(f"database at revision {current_revision(url)}", highlight=False)


@app.command()
def demo(host: HostOpt = None, port: PortOpt = None, verbose: VerboseOpt = False) -> None:
    """Serve the API on loopback with the demo catalog and one live, recorded demo stream."""
    from avatarcast.control.demo import DemoInfo, serve_demo

    _setup_logging(verbose)
    settings = _server_settings(host or "127.0.0.1", port)

    def ready(info: DemoInfo) -> None:
        out.print(
            f"avatarcast demo: {info.products} products, stream {info.stream_id} going live\n"
            f"  player      {info.player_url}\n"
            f"  API docs    {info.docs_url}\n"
            f"  API key     {info.api_key}  (operator; shown once)\n"
            f"  status      curl -H 'Authorization: Bearer {info.api_key}' "
            f"{info.api_url}/v1/streams/{info.stream_id}\n"
            f"  recordings  {info.recordings_dir}\n"
            "Ctrl-C stops.",
            highlight=False,
            soft_wrap=True,
        )

    try:
        asyncio.run(serve_demo(settings, on_ready=ready))
    except KeyboardInterrupt:
        pass
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
