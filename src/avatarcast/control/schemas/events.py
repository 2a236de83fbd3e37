from __future__ import annotations

from datetime import datetime
from typing import Any

from avatarcast.control.schemas.common import Out


class EventPublic(Out):
    id: int
    stream_id: str
    time: datetime
    kind: str
    detail: dict[str, Any]


class EventPage(Out):
    items: list[EventPublic]
    next_cursor: str | None = None
