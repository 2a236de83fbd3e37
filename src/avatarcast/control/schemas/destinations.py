"""Destinations: the stream key goes in and never comes out (``has_key`` says it is set)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr

from avatarcast.control.schemas.common import In, Out
from avatarcast.pipeline.spec import Preset, Size


class DestinationCreate(In):
    name: str = Field(min_length=1, max_length=120)
    url: str = Field(min_length=1, max_length=2048, description="rtmp, rtmps or srt; no key")
    stream_key: SecretStr | None = Field(default=None, max_length=1024)
    size: Size | None = Field(default=None, description="Frame size it takes; null: the stream's")
    preset: Preset | None = Field(
        default=None, description="Platform whose interface overlays avoid; null: the stream's"
    )


class DestinationUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    stream_key: SecretStr | None = Field(
        default=None, max_length=1024, description="null removes the key"
    )
    size: Size | None = None
    preset: Preset | None = None


class DestinationPublic(Out):
    id: str
    name: str
    url: str = Field(description="With any password or secret query value redacted")
    has_key: bool
    size: Size | None = None
    preset: Preset | None = None
    created_at: datetime
    updated_at: datetime
