"""Where one stream's record lives on disk: ``<recordings_dir>/<tenant_id>/<stream_id>/``.

The recorder writes ``segment-NNNNN.mp4`` and ``index.json`` there. Transcripts, chat and price
snapshots go next to them as JSON Lines (``transcript*.jsonl``, ``chat*.jsonl``,
``prices*.jsonl``), and so do the recorded replay sessions (``session-*.jsonl``, one per run);
a writer that rotates them (``transcript-2025-06-01.jsonl``) lets retention drop old days of a
long stream. A file's end time is its modification time: the moment its last
byte was written. Transcript lines the control plane keeps in its ``transcript_lines`` table
count too; a line's end time is its ``wall_time``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from avatarcast.db.base import Base
from avatarcast.db.models_streams import TranscriptLine

__all__ = [
    "RECORD_KINDS",
    "RecordFile",
    "atomic_text",
    "record_files",
    "stream_dir",
    "transcript_rows",
    "transcript_table",
    "write_json_atomic",
]

RecordKind = Literal["segment", "transcript", "chat", "prices", "session"]
#: What retention and export look for in a stream's folder.
RECORD_KINDS: dict[RecordKind, str] = {
    "segment": "segment-*.mp4",
    "transcript": "transcript*.jsonl",
    "chat": "chat*.jsonl",
    "prices": "prices*.jsonl",
    "session": "session-*.jsonl",
}
INDEX_NAME = "index.json"


@dataclass(frozen=True, slots=True)
class RecordFile:
    kind: RecordKind
    path: Path
    ended: datetime


def stream_dir(recordings_dir: Path, tenant_id: str, stream_id: str) -> Path:
    return recordings_dir / tenant_id / stream_id


def stream_dirs(recordings_dir: Path) -> Iterator[tuple[str, str, Path]]:
    """``(tenant_id, stream_id, folder)`` of every stream folder, in name order."""
    if not recordings_dir.is_dir():
        return
    for tenant in sorted(p for p in recordings_dir.iterdir() if p.is_dir()):
        for stream in sorted(p for p in tenant.iterdir() if p.is_dir()):
            yield tenant.name, stream.name, stream


def record_files(folder: Path) -> list[RecordFile]:
    """The record files of one stream folder, by kind then name (hidden temp files skipped)."""
    found: list[RecordFile] = []
    for kind, pattern in RECORD_KINDS.items():
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and not path.name.startswith("."):
                ended = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                found.append(RecordFile(kind, path, ended))
    return found


def write_json_atomic(path: Path, body: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """A text file that appears at ``path``, complete, only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def transcript_table() -> Table:
    """The control plane's ``transcript_lines`` table."""
    return Base.metadata.tables[TranscriptLine.__tablename__]


def transcript_rows(session: Session, tenant_id: str, stream_id: str) -> Iterator[dict[str, Any]]:
    """A stream's transcript lines from the database, oldest first, as JSON-safe dicts."""
    table = transcript_table()
    query = (
        select(table)
        .where(table.c.tenant_id == tenant_id, table.c.stream_id == stream_id)
        .order_by(table.c.id)
        .execution_options(yield_per=1000)
    )
    for row in session.execute(query).mappings():
        yield {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
