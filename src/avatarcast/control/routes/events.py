"""Events of a stream. Streams arrive later; until then an unknown stream has no events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from avatarcast.control.deps import SessionDep, StaffDep
from avatarcast.control.pagination import CursorQuery, LimitQuery, after_key, cut_page
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.events import EventPage, EventPublic
from avatarcast.db.events import list_events

router = APIRouter(prefix="/v1/streams", tags=["events"], responses=AUTH_PROBLEMS)


@router.get("/{stream_id}/events", response_model=EventPage)
def stream_events(
    stream_id: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    caller: StaffDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> EventPage:
    """Oldest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    rows = list_events(
        session,
        tenant_id=caller.tenant_id,
        stream_id=stream_id,
        after=after_key(cursor),
        limit=limit,
        kind=kind,
    )
    page, nxt = cut_page(rows, limit, lambda e: e.id)
    return EventPage(items=[EventPublic.model_validate(e) for e in page], next_cursor=nxt)
