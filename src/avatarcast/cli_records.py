"""Record-keeping commands: the audit trail, retention and one stream's export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from avatarcast.cli_support import err, out, reported, server_settings, session_at

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from avatarcast.compliance.audit import ChainHead

__all__ = ["audit_app", "export_cmd", "retention_app"]

audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
retention_app = typer.Typer(help="Deleting records older than the policy.", no_args_is_help=True)
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
    with reported():
        if file is not None:
            heads = _manifest_heads(manifest, ChainHead) if manifest is not None else None
            result = verify(read_jsonl(file), heads=heads)
            source = str(file)
        else:
            url = database_url or server_settings(None, None).database_url
            with session_at(url) as session:
                result = AuditLog().verify_database(session)
            source = "the database"
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

    url = database_url or server_settings(None, None).database_url
    with reported():
        with session_at(url) as session, atomic_text(out_path) as f:
            n = write_jsonl(AuditLog().entries(session, tenant_id=tenant, stream_id=stream), f)
    out.print(f"wrote {n} entries to {out_path}", highlight=False, soft_wrap=True)


@audit_app.command("anchor")
def audit_anchor(
    out_path: Annotated[Path, typer.Option("--out", help="JSON Lines file to append heads to.")],
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Append every chain's head (seq, hash) to a file kept outside the database."""
    from avatarcast.compliance.audit import AuditLog

    url = database_url or server_settings(None, None).database_url
    with reported():
        with session_at(url) as session:
            n = AuditLog().write_anchor(session, out_path)
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
    from avatarcast.db import make_engine, make_sessionmaker

    settings = server_settings(None, None)
    with reported():
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


def export_cmd(
    stream: Annotated[str, typer.Option("--stream", help="Stream id.")],
    out_path: Annotated[Path, typer.Option("--out", help="Archive to write (.tar.gz).")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant id (found from the stream if unset).")
    ] = None,
) -> None:
    """Write one stream's record (recording, logs, audit chain, manifest) as one archive."""
    from avatarcast.compliance.export import export_stream

    settings = server_settings(None, None)
    with reported():
        with session_at(settings.database_url) as session:
            tenant_id = tenant or _tenant_of(session, settings.recordings_dir, stream)
            result = export_stream(
                session,
                recordings_dir=settings.recordings_dir,
                tenant_id=tenant_id,
                stream_id=stream,
                out=out_path,
            )
    out.print(
        f"wrote {out_path}: {len(result.manifest['files'])} files, "
        f"{result.manifest['audit']['entries']} audit entries",
        highlight=False,
        soft_wrap=True,
    )


def _tenant_of(session: Session, recordings_dir: Path, stream_id: str) -> str:
    """The one tenant that has a stream ``stream_id``: in the database, on disk or in audit."""
    from sqlalchemy import select

    from avatarcast.db.models_audit import AuditRow
    from avatarcast.errors import ConfigError

    found = {p.parent.name for p in recordings_dir.glob(f"*/{stream_id}") if p.is_dir()}
    try:
        from avatarcast.db.models_streams import StreamRow

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
