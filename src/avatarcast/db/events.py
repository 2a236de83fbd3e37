"""Stream events: the runner records them, the API pages through them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.db.base import utcnow
from avatarcast.db.models import Event


def record_event(
    session: Session,
    *,
    tenant_id: str,
    stream_id: str,
    kind: str,
    detail: Mapping[str, Any] | None = None,
) -> Event:
    """Add one event to the session (the caller commits). ``detail`` must be JSON-safe."""
    event = Event(
        tenant_id=tenant_id,
        stream_id=stream_id,
        kind=kind,
        detail=dict(detail or {}),
        time=utcnow(),
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    tenant_id: str,
    stream_id: str,
    after: int,
    limit: int,
    kind: str | None = None,
) -> Sequence[Event]:
    """Oldest first, ``limit + 1`` rows to tell whether a next page exists."""
    query = select(Event).where(
        Event.tenant_id == tenant_id, Event.stream_id == stream_id, Event.id > after
    )
    if kind is not None:
        query = query.where(Event.kind == kind)
    return session.scalars(query.order_by(Event.id).limit(limit + 1)).all()
