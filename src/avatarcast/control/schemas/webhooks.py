"""Webhooks: the secret goes in and never comes out; deliveries show how each event fared."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr

from avatarcast.control.schemas.common import In, Out

EventKind = Annotated[str, Field(pattern=r"^(\*|[a-z][a-z0-9_]{0,63})$")]


class WebhookCreate(In):
    url: str = Field(min_length=1, max_length=2048, description="http(s) receiver")
    secret: SecretStr = Field(
        min_length=16,
        max_length=256,
        description="Signs each delivery (HMAC-SHA256); write-only, never returned",
    )
    events: list[EventKind] = Field(
        min_length=1,
        max_length=64,
        description="Stream event kinds to send (glitch, crashed, restarted, stopped, "
        "recording_stopped, recording_resumed ...); ['*'] sends every kind",
    )
    description: str = Field(default="", max_length=200)


class WebhookPublic(Out):
    id: str
    url: str = Field(description="With any password or secret query value redacted")
    events: list[str]
    description: str
    created_at: datetime


class DeliveryPublic(Out):
    id: int
    webhook_id: str
    kind: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


class DeliveryPage(Out):
    items: list[DeliveryPublic]
    next_cursor: str | None
