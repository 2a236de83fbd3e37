"""The ``avatarcast`` command line. Only this module and the app factory read Settings."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from avatarcast.errors import AvatarcastError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from avatarcast.compliance.audit import ChainHead
    from avatarcast.compliance.c2pa import SignerConfig
    from avatarcast.pipeline.build import ProgrammeOptions
    from avatarcast.script.llm import LlmOptions
    from avatarcast.settings import Settings
    from avatarcast.voice.registry import NetworkVoiceOptions

app = typer.Typer(
    name="avatarcast",
    help="Open server for 24/7 AI-avatar live selling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _db_error() -> type[Exception]:
    """SQLAlchemy's error class, imported only when an exception is being matched: importing
    SQLAlchemy costs 0.15 CPU s, which every ``live`` start would pay for nothing."""
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


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
SellerOpt = Annotated[
    str | None,
    typer.Option("--seller", help='Seller shown on screen: "NAME" or "NAME|CONTACT".'),
]


def _c2pa() -> SignerConfig | None:
    """The C2PA signer from settings (``c2pa.enabled``), or None."""
    from avatarcast.compliance.c2pa import SignerConfig
    from avatarcast.settings import Settings

    section = Settings().c2pa
    return SignerConfig.from_section(section) if section.enabled else None


def _seller(value: str | None) -> tuple[str, str] | None:
    if not value or not value.strip():
        return None
    name, _, contact = value.partition("|")
    return name.strip(), contact.strip()


def _fail(e: AvatarcastError | OSError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


PersonaOpt = Annotated[
    str | None, typer.Option("--persona", help="Who the LLM host is (with --writer llm).")
]
ToneOpt = Annotated[str | None, typer.Option("--tone", help="How the LLM host speaks.")]
DisclosureOpt = Annotated[
    float,
    typer.Option(
        "--disclosure-every",
        help="Seconds between spoken AI disclosures (the first opens the programme).",
        min=30.0,
    ),
]


def _programme_options(
    *,
    catalog: Path,
    lang: str,
    avatar: str | None,
    voice: str | None,
    writer: str,
    seed: int,
    size: str,
    fps: int,
    seller: str | None,
    persona: str | None,
    tone: str | None,
    disclosure_every: float = 600.0,
) -> ProgrammeOptions:
    """The options `render` and `live` share, with settings read only where a flag needs them."""
    from dataclasses import replace

    from avatarcast.pipeline.build import ProgrammeOptions

    llm = _llm_options(writer)
    if llm is not None:
        llm = replace(llm, persona=persona or llm.persona, tone=tone or llm.tone)
    return ProgrammeOptions(
        catalog_path=catalog,
        lang=lang,
        avatar=avatar,
        voice=voice,
        writer=writer,
        llm=llm,
        tts=_tts_options(voice),
        seed=seed,
        size=size,
        fps=fps,
        seller=_seller(seller),
        disclosure_interval_s=disclosure_every,
    )


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


def _tts_options(voice: str | None) -> NetworkVoiceOptions | None:
    """Where a network voice connects: ``[tts]``, its empty fields borrowed from ``[llm]``."""
    if voice is None or not voice.startswith(("openai:", "edge:")):
        return None
    from avatarcast.settings import Settings
    from avatarcast.voice.registry import NetworkVoiceOptions

    try:
        settings = Settings()
    except (AvatarcastError, ValueError) as e:
        err.print(f"[bold red]error:[/] settings: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    tts, llm = settings.tts, settings.llm
    return NetworkVoiceOptions(
        openai_base_url=tts.base_url or llm.base_url,
        openai_api_key=tts.api_key.get_secret_value() or llm.api_key.get_secret_value(),
        openai_model=tts.model,
        edge_proxy=tts.edge_proxy,
        timeout_s=tts.timeout_s,
        failures_to_open=tts.failures_to_open,
        cooldown_s=tts.cooldown_s,
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
    seller: SellerOpt = None,
    persona: PersonaOpt = None,
    tone: ToneOpt = None,
    disclosure_every: DisclosureOpt = 600.0,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Write spoken sentences as JSON Lines.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Render the catalog's programme offline, as fast as the machine allows."""
    from avatarcast.pipeline.render import render_file

    _setup_logging(verbose)
    opts = _programme_options(
        catalog=catalog, lang=lang, avatar=avatar, voice=voice, writer=writer, seed=seed,
        size=size, fps=fps, seller=seller, persona=persona, tone=tone,
        disclosure_every=disclosure_every,
    )  # fmt: skip
    try:
        result = asyncio.run(
            render_file(
                opts,
                out=out_path,
                duration=duration,
                transcript=transcript,
                progress=not quiet and sys.stderr.isatty(),
                c2pa=_c2pa(),
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
    seller: SellerOpt = None,
    persona: PersonaOpt = None,
    tone: ToneOpt = None,
    disclosure_every: DisclosureOpt = 600.0,
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
    from avatarcast.startup import StartupSlot
    from avatarcast.threads import import_in_background

    slot = StartupSlot()  # launches on one machine start in turn; see avatarcast.startup
    slot.acquire()
    try:
        import_in_background("avatarcast.pipeline.live")  # low priority: streams on air first
        from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
    except BaseException:
        slot.release()
        raise

    _setup_logging(verbose)
    opts = LiveOptions(
        programme=_programme_options(
            catalog=catalog,
            lang=lang,
            avatar=avatar,
            voice=voice,
            writer=writer,
            seed=seed,
            size=size,
            fps=fps,
            seller=seller,
            persona=persona,
            tone=tone,
            disclosure_every=disclosure_every,
        ),
        destinations=tuple(to or ()),
        record_dir=record,
        segment_seconds=segment_seconds,
        whep_port=whep_port,
        duration=duration,
        start_at=start_at,
        c2pa=_c2pa(),
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
        await run_live(
            opts,
            control=control,
            on_status=on_status if status_json else None,
            on_air=slot.release,
        )

    try:
        asyncio.run(main())
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    finally:
        slot.release()


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


audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
retention_app = typer.Typer(help="Deleting records older than the policy.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
DatabaseUrlOpt = Annotated[
    str | None, typer.Option("--database-url", help="Database URL (default: from settings).")
]


@audit_app.command("verify")
def audit_verify(
    database_url: DatabaseUrlOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="An audit JSON Lines file (export, excerpt).")
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="With --file: an export's manifest.json; check its head."),
    ] = None,
) -> None:
    """Check every chain; exit 1 naming the first broken entry."""
    from avatarcast.compliance.audit import AuditLog, ChainHead, read_jsonl, verify

    if file is not None and database_url is not None:
        err.print(
            "[bold red]error:[/] give --database-url or --file, not both",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=2)
    try:
        if file is not None:
            heads = _manifest_heads(manifest, ChainHead) if manifest is not None else None
            result = verify(read_jsonl(file), heads=heads)
            source = str(file)
        else:
            url = database_url or _server_settings(None, None).database_url
            with _session(url) as session:
                result = AuditLog().verify_database(session)
            source = "the database"
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    except _db_error() as e:
        raise _fail(_database_error(e)) from None
    if result.first_bad is not None:
        err.print(
            f"audit trail in {source} is BROKEN: {result.first_bad}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
    note = ""
    if result.starts_mid_chain:
        note = f" ({len(result.starts_mid_chain)} chain(s) start after a purge or an excerpt cut)"
    out.print(
        f"ok: {result.entries} entries in {result.chains} chain(s) in {source}{note}",
        highlight=False,
        soft_wrap=True,
    )


def _manifest_heads(manifest: Path, head_type: type[ChainHead]) -> dict[tuple[str, str], ChainHead]:
    body = json.loads(manifest.read_text(encoding="utf-8"))
    head = body.get("audit", {}).get("head")
    if head is None:
        return {}
    key = (str(body["tenant_id"]), str(body["stream_id"]))
    return {key: head_type(head["seq"], head["hash"], head["base_seq"], head["base_hash"])}


@audit_app.command("export")
def audit_export(
    out_path: Annotated[Path, typer.Option("--out", help="JSON Lines file to write.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant id.")] = None,
    stream: Annotated[
        str | None, typer.Option("--stream", help='Only this stream id ("" for tenant actions).')
    ] = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Write audit entries with their hashes as JSON Lines (verify with `audit verify --file`)."""
    from avatarcast.compliance.audit import AuditLog, write_jsonl
    from avatarcast.compliance.records import atomic_text

    url = database_url or _server_settings(None, None).database_url
    try:
        with _session(url) as session, atomic_text(out_path) as f:
            n = write_jsonl(AuditLog().entries(session, tenant_id=tenant, stream_id=stream), f)
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    except _db_error() as e:
        raise _fail(_database_error(e)) from None
    out.print(f"wrote {n} entries to {out_path}", highlight=False, soft_wrap=True)


@audit_app.command("anchor")
def audit_anchor(
    out_path: Annotated[Path, typer.Option("--out", help="JSON Lines file to append heads to.")],
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Append every chain's head (seq, hash) to a file kept outside the database."""
    from avatarcast.compliance.audit import AuditLog

    url = database_url or _server_settings(None, None).database_url
    try:
        with _session(url) as session:
            n = AuditLog().write_anchor(session, out_path)
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    except _db_error() as e:
        raise _fail(_database_error(e)) from None
    out.print(f"anchored {n} chain head(s) in {out_path}", highlight=False, soft_wrap=True)


@retention_app.command("purge")
def retention_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete recordings, logs and audit entries that ended longer ago than retention.days."""
    from datetime import UTC, datetime

    from avatarcast.compliance.retention import Retention, RetentionPolicy, running_streams
    from avatarcast.control import upgrade_database
    from avatarcast.control.db import make_engine, make_sessionmaker

    settings = _server_settings(None, None)
    try:
        upgrade_database(settings.database_url)
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            running = running_streams(session)
        retention = Retention(
            policy=RetentionPolicy(days=settings.retention.days),
            recordings_dir=settings.recordings_dir,
            sessions=sessions,
            is_running=lambda tenant_id, stream_id: (tenant_id, stream_id) in running,
        )
        report = retention.purge(datetime.now(UTC), dry_run=dry_run)
        engine.dispose()
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    except _db_error() as e:
        raise _fail(_database_error(e)) from None
    verb = "would delete" if dry_run else "deleted"
    for _, item in report.files:
        out.print(
            f"{verb} {item.kind} {item.path} (ended {item.ended:%Y-%m-%d})",
            highlight=False,
            soft_wrap=True,
        )
    for (tenant_id, stream_id), (first, last) in sorted(report.audit.items()):
        chain = f"{tenant_id}/{stream_id or '(tenant)'}"
        out.print(
            f"{verb} audit entries {first}-{last} of {chain}", highlight=False, soft_wrap=True
        )
    for tenant_id, stream_id in report.skipped_running:
        out.print(
            f"kept {tenant_id}/{stream_id}: the stream is running", highlight=False, soft_wrap=True
        )
    out.print(
        f"retention {settings.retention.days} days, cutoff {report.cutoff:%Y-%m-%d %H:%M} UTC: "
        f"{len(report.files)} file(s), {len(report.audit)} audit chain(s) {verb}",
        highlight=False,
        soft_wrap=True,
    )
    for error in report.errors:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    if report.errors:
        raise typer.Exit(code=1)


@app.command("export")
def export_cmd(
    stream: Annotated[str, typer.Option("--stream", help="Stream id.")],
    out_path: Annotated[Path, typer.Option("--out", help="Archive to write (.tar.gz).")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant id (found from the stream if unset).")
    ] = None,
) -> None:
    """Write one stream's record (recording, logs, audit chain, manifest) as one archive."""
    from avatarcast.compliance.export import export_stream

    settings = _server_settings(None, None)
    try:
        with _session(settings.database_url) as session:
            tenant_id = tenant or _tenant_of(session, settings.recordings_dir, stream)
            result = export_stream(
                session,
                recordings_dir=settings.recordings_dir,
                tenant_id=tenant_id,
                stream_id=stream,
                out=out_path,
            )
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    except _db_error() as e:
        raise _fail(_database_error(e)) from None
    out.print(
        f"wrote {out_path}: {len(result.manifest['files'])} files, "
        f"{result.manifest['audit']['entries']} audit entries",
        highlight=False,
        soft_wrap=True,
    )


def _tenant_of(session: Session, recordings_dir: Path, stream_id: str) -> str:
    """The one tenant that has a stream ``stream_id``: in the database, on disk or in audit."""
    from sqlalchemy import select

    from avatarcast.compliance.models import AuditRow
    from avatarcast.errors import ConfigError

    found = {p.parent.name for p in recordings_dir.glob(f"*/{stream_id}") if p.is_dir()}
    try:
        from avatarcast.control.db.models_streams import StreamRow

        found |= set(session.scalars(select(StreamRow.tenant_id).where(StreamRow.id == stream_id)))
    except ImportError:  # pragma: no cover - streams arrive with the runner
        pass
    found |= set(
        session.scalars(
            select(AuditRow.tenant_id).where(AuditRow.stream_id == stream_id).distinct()
        )
    )
    if len(found) != 1:
        what = "no tenant" if not found else f"tenants {', '.join(sorted(found))}"
        raise ConfigError(f"stream {stream_id!r} belongs to {what}; pass --tenant")
    return found.pop()


@contextmanager
def _session(url: str) -> Iterator[Session]:
    from avatarcast.control.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _database_error(e: Exception) -> AvatarcastError:
    """A short message: the driver's own words, not SQLAlchemy's traceback (no bound values)."""
    cause = getattr(e, "orig", None) or e
    return AvatarcastError(f"database: {str(cause).splitlines()[0]}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
