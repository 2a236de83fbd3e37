"""Keep a stream's record for the policy's time (3 years by default), then delete it.

An item goes only when its *end* is older than the policy: a segment or log file by the time it
was last written, an audit entry or a transcript line by its own time. Nothing in the folder of
a stream that is still running is touched: its recorder rewrites ``index.json`` from memory
after each segment, and its logs are still being appended to. (Rows of ``transcript_lines``
are whole lines, so old ones go even while their stream runs.) What a purge deletes is written
to the audit trail of the stream it belonged to (kind ``retention.purged``, actor
``system:retention``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from avatarcast.compliance.audit import AuditLog, ChainKey, format_time
from avatarcast.compliance.records import (
    INDEX_NAME,
    RecordFile,
    record_files,
    stream_dirs,
    transcript_table,
    write_json_atomic,
)
from avatarcast.db.models_streams import StreamRow
from avatarcast.errors import ComplianceError

__all__ = ["PurgeReport", "Retention", "RetentionPolicy", "running_streams"]

log = logging.getLogger(__name__)
ACTOR = "system:retention"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    days: int = 3 * 365

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ComplianceError(f"retention days must be >= 1, got {self.days}")

    def cutoff(self, now: datetime) -> datetime:
        """Items that ended before this are due; one that ended at it or later is kept."""
        if now.tzinfo is None:
            raise ComplianceError(f"naive time {now!r}; retention works in UTC")
        return now - timedelta(days=self.days)


@dataclass(slots=True)
class PurgeReport:
    cutoff: datetime
    dry_run: bool
    files: list[tuple[ChainKey, RecordFile]] = field(default_factory=list)
    audit: dict[ChainKey, tuple[int, int]] = field(default_factory=dict)
    #: Rows of the ``transcript_lines`` table per stream, by their ``wall_time``.
    transcript_lines: dict[ChainKey, int] = field(default_factory=dict)
    skipped_running: list[ChainKey] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Retention:
    """Runs a :class:`RetentionPolicy` over recordings on disk and the audit table.

    ``is_running(tenant_id, stream_id)`` says whether a stream is on air (or paused) now;
    :func:`running_streams` gives the control plane's answer.
    """

    def __init__(
        self,
        *,
        policy: RetentionPolicy,
        recordings_dir: Path,
        sessions: Callable[[], Session],
        is_running: Callable[[str, str], bool],
        audit: AuditLog | None = None,
    ) -> None:
        self.policy = policy
        self.recordings_dir = recordings_dir
        self.sessions = sessions
        self.is_running = is_running
        self.audit = audit or AuditLog()

    def purge(self, now: datetime, *, dry_run: bool = False) -> PurgeReport:
        report = PurgeReport(cutoff=self.policy.cutoff(now), dry_run=dry_run)
        self._find_files(report)
        with self.sessions() as session, session.begin():
            report.audit = self.audit.purge_before(session, report.cutoff, dry_run=dry_run)
            report.transcript_lines = _purge_transcript_lines(session, report.cutoff, dry_run)
            if not dry_run:
                self._log(session, report)
        if not dry_run:
            self._delete_files(report)
            if report.errors:
                self._log_errors(report)
        return report

    def _find_files(self, report: PurgeReport) -> None:
        for tenant_id, stream_id, folder in stream_dirs(self.recordings_dir):
            if self.is_running(tenant_id, stream_id):
                report.skipped_running.append((tenant_id, stream_id))
                continue
            for item in record_files(folder):
                if item.ended < report.cutoff:
                    report.files.append(((tenant_id, stream_id), item))

    def _log(self, session: Session, report: PurgeReport) -> None:
        by_chain: dict[ChainKey, dict[str, Any]] = {}
        for key, item in report.files:
            detail = by_chain.setdefault(key, {"files": []})
            detail["files"].append({"kind": item.kind, "name": item.path.name})
        for key, (first, last) in report.audit.items():
            by_chain.setdefault(key, {})["audit_seq"] = [first, last]
        for key, count in report.transcript_lines.items():
            by_chain.setdefault(key, {})["transcript_lines"] = count
        for (tenant_id, stream_id), detail in sorted(by_chain.items()):
            detail |= {"cutoff": format_time(report.cutoff), "days": self.policy.days}
            self.audit.append(
                session,
                tenant_id=tenant_id,
                stream_id=stream_id,
                actor=ACTOR,
                kind="retention.purged",
                detail=detail,
            )

    def _delete_files(self, report: PurgeReport) -> None:
        folders: dict[Path, set[str]] = {}
        for _, item in report.files:
            try:
                item.path.unlink(missing_ok=True)
            except OSError as e:
                report.errors.append(f"cannot delete {item.path}: {e.strerror or e}")
                continue
            folders.setdefault(item.path.parent, set()).add(item.path.name)
        for folder, gone in folders.items():
            try:
                _prune_index(folder, gone)
            except (OSError, ValueError) as e:
                report.errors.append(f"cannot update {folder / INDEX_NAME}: {e}")

    def _log_errors(self, report: PurgeReport) -> None:
        for error in report.errors:
            log.error("retention: %s", error)
        with self.sessions() as session, session.begin():
            for tenant_id, stream_id in sorted({key for key, _ in report.files}):
                self.audit.append(
                    session,
                    tenant_id=tenant_id,
                    stream_id=stream_id,
                    actor=ACTOR,
                    kind="retention.failed",
                    detail={"errors": report.errors[:50]},
                )


def _prune_index(folder: Path, gone: set[str]) -> None:
    """Drop deleted segments from ``index.json``; remove it and the folder once empty."""
    index = folder / INDEX_NAME
    if index.is_file():
        body = json.loads(index.read_text(encoding="utf-8"))
        segments = [s for s in body.get("segments", []) if s.get("file") not in gone]
        if segments or record_files(folder):
            body["segments"] = segments
            write_json_atomic(index, body)
        else:
            index.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def _purge_transcript_lines(
    session: Session, cutoff: datetime, dry_run: bool
) -> dict[ChainKey, int]:
    """Transcript lines spoken before ``cutoff``; each line is whole, running stream or not."""
    table = transcript_table()
    old = table.c.wall_time < cutoff
    counts = session.execute(
        select(table.c.tenant_id, table.c.stream_id, func.count())
        .where(old)
        .group_by(table.c.tenant_id, table.c.stream_id)
    ).all()
    if not dry_run and counts:
        session.execute(delete(table).where(old))
    return {(str(t), str(s)): int(n) for t, s, n in counts}


def running_streams(session: Session) -> set[ChainKey]:
    """Streams the control plane wants on air or paused: their folders are left alone."""
    rows = session.execute(
        select(StreamRow.tenant_id, StreamRow.id).where(StreamRow.desired_state != "stopped")
    ).all()
    return {(str(t), str(s)) for t, s in rows}
