"""One stream's whole record as a single ``.tar.gz`` a regulator or a court can check alone.

The archive holds ``stream-<id>/recording/`` (segments and ``index.json``), ``logs/``
(transcript, chat and price JSON Lines, and ``transcript_lines.jsonl`` from the database),
``audit.jsonl`` (the stream's audit chain with its hashes) and, last, ``manifest.json``
listing every other member with its size and SHA-256. It is written to a temporary file
beside ``out`` and renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from avatarcast import __version__
from avatarcast.compliance.audit import AuditLog, ChainHead, format_time, write_jsonl
from avatarcast.compliance.records import INDEX_NAME, record_files, stream_dir, transcript_rows
from avatarcast.errors import ComplianceError

__all__ = ["EXPORT_FORMAT", "ExportResult", "check_export", "export_stream"]

EXPORT_FORMAT = "avatarcast-export/1"
MANIFEST_NAME = "manifest.json"
#: The control plane's ``transcript_lines`` rows of the stream, one JSON object a line.
TRANSCRIPT_LINES_NAME = "transcript_lines.jsonl"


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    manifest: dict[str, Any]


def export_stream(
    session: Session,
    *,
    recordings_dir: Path,
    tenant_id: str,
    stream_id: str,
    out: Path,
    audit: AuditLog | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ExportResult:
    """Write the archive to ``out`` atomically; raises ComplianceError if nothing is recorded."""
    audit = audit or AuditLog()
    folder = stream_dir(recordings_dir, tenant_id, stream_id)
    files = record_files(folder) if folder.is_dir() else []
    buf = io.StringIO()
    count = write_jsonl(audit.entries(session, tenant_id=tenant_id, stream_id=stream_id), buf)
    lines = [
        json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
        for row in transcript_rows(session, tenant_id, stream_id)
    ]
    if not files and count == 0 and not lines:
        raise ComplianceError(f"stream {stream_id!r} of tenant {tenant_id!r} has no record")
    head = audit.heads(session, tenant_id=tenant_id, stream_id=stream_id).get(
        (tenant_id, stream_id)
    )
    root = f"stream-{stream_id}"
    now = (clock or (lambda: datetime.now(UTC)))()
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generator": f"avatarcast/{__version__}",
        "created": format_time(now),
        "tenant_id": tenant_id,
        "stream_id": stream_id,
        "files": [],
        "audit": {"entries": count, "head": _head_json(head)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                members = [
                    (f"recording/{f.path.name}", f.path) for f in files if f.kind == "segment"
                ]
                if (folder / INDEX_NAME).is_file():
                    members.insert(0, (f"recording/{INDEX_NAME}", folder / INDEX_NAME))
                members += [(f"logs/{f.path.name}", f.path) for f in files if f.kind != "segment"]
                for name, path in members:
                    manifest["files"].append(_add_file(tar, f"{root}/{name}", path, now))
                if lines:
                    name = f"{root}/logs/{TRANSCRIPT_LINES_NAME}"
                    manifest["files"].append(_add_bytes(tar, name, "".join(lines).encode(), now))
                audit_bytes = buf.getvalue().encode()
                manifest["files"].append(_add_bytes(tar, f"{root}/audit.jsonl", audit_bytes, now))
                body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
                _add_bytes(tar, f"{root}/{MANIFEST_NAME}", body, now)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ComplianceError(f"cannot write {out}: {e.strerror or e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(out, manifest)


def _head_json(head: ChainHead | None) -> dict[str, Any] | None:
    if head is None:
        return None
    return {
        "seq": head.seq,
        "hash": head.hash,
        "base_seq": head.base_seq,
        "base_hash": head.base_hash,
    }


class _HashingReader:
    """Reads a file for ``tarfile`` and hashes exactly what went into the archive."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.sha256.update(data)
        return data


def _info(name: str, size: int, now: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(now.timestamp())
    info.mode = 0o644
    return info


def _add_file(tar: tarfile.TarFile, name: str, path: Path, now: datetime) -> dict[str, Any]:
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size  # a snapshot: a growing file is cut here
        reader = _HashingReader(f)
        tar.addfile(_info(name, size, now), reader)
    return {"path": name.split("/", 1)[1], "size": size, "sha256": reader.sha256.hexdigest()}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, now: datetime) -> dict[str, Any]:
    tar.addfile(_info(name, len(data), now), io.BytesIO(data))
    return {
        "path": name.split("/", 1)[1],
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def check_export(archive: Path) -> list[str]:
    """Problems with an export: members missing from or not matching its manifest (empty = ok)."""
    problems: list[str] = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            digests: dict[str, tuple[int, str]] = {}
            manifest: dict[str, Any] | None = None
            for member in tar:
                f = tar.extractfile(member)
                if f is None:
                    continue
                data = f.read()
                path = member.name.split("/", 1)[1] if "/" in member.name else member.name
                if path == MANIFEST_NAME:
                    manifest = json.loads(data)
                else:
                    digests[path] = (len(data), hashlib.sha256(data).hexdigest())
    except (OSError, tarfile.TarError, json.JSONDecodeError) as e:
        return [f"cannot read {archive}: {e}"]
    if manifest is None or manifest.get("format") != EXPORT_FORMAT:
        return [f"{archive}: no {EXPORT_FORMAT} manifest"]
    listed = {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]}
    for path, want in listed.items():
        if path not in digests:
            problems.append(f"{path}: listed in the manifest, missing from the archive")
        elif digests[path] != want:
            problems.append(f"{path}: size or SHA-256 differs from the manifest")
    problems += [f"{p}: in the archive, not in the manifest" for p in digests if p not in listed]
    return problems
