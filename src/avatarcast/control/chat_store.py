"""Chat sources in the database, so a restarted server opens them again.

A source's credential (IRC token, OAuth token, webhook secret) is sealed with the server key
like a destination's stream key (:mod:`control.secretbox`) and opened only to start the source.
A private CA file must lie in ``chat_sources.ca_dir``: an API caller can name a file there,
never learn whether some other path exists on the server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.control.problems import ProblemError, validation_problem
from avatarcast.control.secretbox import SecretBox
from avatarcast.db.models_chat import ChatSourceRow
from avatarcast.db.models_streams import StreamRow
from avatarcast.errors import ConfigError

__all__ = [
    "StoredSource",
    "delete_source",
    "insert_source",
    "live_sources",
    "reseal_secrets",
    "resolve_ca",
    "stream_sources",
]

log = logging.getLogger(__name__)
#: Stream states whose chat sources a starting server opens again.
LIVE_STATES = ("live", "paused")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSource:
    """A row with its credential opened: only for starting the source, never for a response."""

    id: str
    tenant_id: str
    stream_id: str
    config: dict[str, Any]
    token: str

    def __repr__(self) -> str:
        return f"StoredSource(id={self.id!r}, stream_id={self.stream_id!r})"


def resolve_ca(ca_dir: Path | None, name: str) -> Path:
    """The CA file ``name`` (relative to ``ca_dir``, or absolute inside it), or a 422 that
    reads the same whether the path is missing, outside the folder or not a file."""
    problem = validation_problem(
        [
            {
                "field": "body.ca_file",
                "message": "ca_file must name a readable file in the server's CA folder "
                "(chat_sources.ca_dir)",
                "type": "ca_file",
            }
        ]
    )
    if ca_dir is None:
        raise validation_problem(
            [
                {
                    "field": "body.ca_file",
                    "message": "this server takes no ca_file: chat_sources.ca_dir is not set",
                    "type": "ca_file",
                }
            ]
        )
    root = ca_dir.resolve()
    try:
        path = (root / name).resolve()
        path.relative_to(root)
        with path.open("rb"):
            pass
    except (OSError, ValueError):
        raise problem from None
    if not path.is_file():
        raise problem
    return path


def insert_source(
    session: Session,
    box: SecretBox,
    *,
    source_id: str,
    tenant_id: str,
    stream_id: str,
    config: dict[str, Any],
    token: str,
    limit: int,
) -> None:
    """Store a new source; a 409 when the stream has ``limit`` already."""
    count = len(stream_sources(session, tenant_id, stream_id))
    if count >= limit:
        raise ProblemError(409, f"the stream has {limit} chat sources already", kind="conflict")
    session.add(
        ChatSourceRow(
            id=source_id,
            tenant_id=tenant_id,
            stream_id=stream_id,
            kind=str(config["kind"]),
            config=config,
            secret=box.seal(token) if token else None,
        )
    )
    session.commit()


def delete_source(session: Session, tenant_id: str, stream_id: str, source_id: str) -> bool:
    row = session.get(ChatSourceRow, source_id)
    if row is None or row.tenant_id != tenant_id or row.stream_id != stream_id:
        return False
    session.delete(row)
    session.commit()
    return True


def stream_sources(session: Session, tenant_id: str, stream_id: str) -> list[ChatSourceRow]:
    query = (
        select(ChatSourceRow)
        .where(ChatSourceRow.tenant_id == tenant_id, ChatSourceRow.stream_id == stream_id)
        .order_by(ChatSourceRow.created_at, ChatSourceRow.id)
    )
    return list(session.scalars(query))


def live_sources(session: Session, box: SecretBox) -> tuple[list[StoredSource], list[str]]:
    """The enabled sources of every stream that should be on air, credentials opened; the ids of
    those whose credential no server key opens (they stay closed: add them again)."""
    query = (
        select(ChatSourceRow)
        .join(StreamRow, StreamRow.id == ChatSourceRow.stream_id)
        .where(StreamRow.desired_state.in_(LIVE_STATES))
        .order_by(ChatSourceRow.created_at, ChatSourceRow.id)
    )
    stored, unreadable = [], []
    for row in session.scalars(query):
        if not row.config.get("enabled", True):
            continue
        try:
            token = box.open(row.secret) if row.secret else ""
        except ConfigError:
            unreadable.append(row.id)
            continue
        stored.append(
            StoredSource(
                id=row.id,
                tenant_id=row.tenant_id,
                stream_id=row.stream_id,
                config=dict(row.config),
                token=token,
            )
        )
    return stored, unreadable


def reseal_secrets(session: Session, box: SecretBox) -> int:
    """Seal plain or previous-key credentials with the current key (after a key rotation, as
    ``secretbox.reseal_stream_keys`` does for stream keys); how many changed."""
    changed = 0
    for row in session.scalars(select(ChatSourceRow).where(ChatSourceRow.secret.is_not(None))):
        stored = row.secret or ""
        if box.current(stored):
            continue
        try:
            row.secret = box.seal(box.open(stored))
        except ConfigError:
            log.error(
                "chat source %s: its credential opens with no server key; add it again", row.id
            )
            continue
        changed += 1
    session.commit()
    if changed:
        log.info("re-encrypted %d chat source credentials with the current server key", changed)
    return changed
