"""Chat sources of a stream: Twitch (IRC), YouTube live chat, signed webhooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from avatarcast.chatsources.irc import parse_server
from avatarcast.control.schemas.common import In, Out

__all__ = [
    "ChatAccount",
    "ChatSourceIn",
    "ChatSourcePublic",
    "ChatSourceUpdate",
    "TwitchSourceIn",
    "WebhookPost",
    "WebhookSourceIn",
    "YoutubeSourceIn",
]


class TwitchSourceIn(In):
    kind: Literal["twitch"]
    server: str = Field(default="ircs://irc.chat.twitch.tv:6697", max_length=300)
    channel: str = Field(min_length=1, max_length=64, pattern=r"^#?[\w-]+$")
    username: str = Field(min_length=1, max_length=64, pattern=r"^[\w-]+$")
    token: SecretStr | None = Field(default=None, description="OAuth token (write-only)")
    ca_file: str | None = Field(
        default=None,
        max_length=255,
        description="a private CA's file, named inside the server's chat_sources.ca_dir",
    )
    rate_per_30s: int = Field(default=20, ge=1, le=100, description="Twitch: 20, 100 as mod")
    enabled: bool = True

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        parse_server(v)
        return v


class YoutubeSourceIn(In):
    kind: Literal["youtube"]
    live_chat_id: str = Field(min_length=1, max_length=200)
    token: SecretStr = Field(description="OAuth access token (write-only)")
    base_url: str = Field(
        default="https://www.googleapis.com", max_length=300, pattern=r"^https?://"
    )
    rate_per_30s: int = Field(default=10, ge=1, le=100)
    enabled: bool = True
    #: ``rateLimitExceeded`` (too fast): pause this long; ``quotaExceeded`` waits for the reset
    quota_pause_s: float = Field(default=300.0, ge=0.1, le=86_400)
    daily_quota: int = Field(
        default=10_000,
        ge=5,
        le=100_000_000,
        description="units a day this source may spend (list 5, insert 20; resets at midnight "
        "Pacific)",
    )
    read_reserve: int = Field(
        default=500, ge=0, description="units kept for reading: written answers stop before"
    )

    @model_validator(mode="after")
    def _reserve(self) -> YoutubeSourceIn:
        if self.read_reserve >= self.daily_quota:
            raise ValueError("read_reserve must be less than daily_quota")
        return self


class WebhookSourceIn(In):
    kind: Literal["webhook"]
    token: SecretStr = Field(description="HMAC-SHA256 secret, at least 16 characters")
    reply_url: str | None = Field(default=None, max_length=1000, pattern=r"^https?://")
    rate_per_30s: int = Field(default=100, ge=1, le=10_000)
    enabled: bool = True

    @field_validator("token")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("the secret must have at least 16 characters")
        return v


ChatSourceIn = Annotated[
    TwitchSourceIn | YoutubeSourceIn | WebhookSourceIn, Field(discriminator="kind")
]


class ChatSourceUpdate(In):
    """A change to a source: only the fields given change. ``token`` is write-only (a new
    credential replaces the stored one); ``enabled: false`` closes the source and keeps it.
    A field of another platform's source is a 422; the merged source is checked like a new
    one."""

    server: str | None = Field(default=None, max_length=300)
    channel: str | None = Field(default=None, max_length=64)
    username: str | None = Field(default=None, max_length=64)
    ca_file: str | None = Field(default=None, max_length=255)
    live_chat_id: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=300)
    reply_url: str | None = Field(default=None, max_length=1000)
    rate_per_30s: int | None = None
    quota_pause_s: float | None = None
    daily_quota: int | None = None
    read_reserve: int | None = None
    token: SecretStr | None = Field(default=None, description="a new credential (write-only)")
    enabled: bool | None = None


class ChatSourcePublic(Out):
    """A source as configured; the token is never returned (``has_token`` says if one is set)."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    has_token: bool
    health: dict[str, Any] = Field(default_factory=dict)


class ChatAccount(Out):
    """Every message's fate, counted: ``messages_in`` = ``answered_spoken`` +
    ``answered_written`` + ``merged`` + ``blocked`` + ``overflow`` + ``ignored`` + ``pending``."""

    model_config = ConfigDict(extra="allow")

    messages_in: int
    balanced: bool


class WebhookMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128)
    viewer_id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=128)
    text: str = Field(min_length=1, max_length=2000)
    reply_to: str = Field(default="", max_length=200)


class WebhookPost(BaseModel):
    model_config = ConfigDict(extra="ignore")

    messages: list[WebhookMessage] = Field(min_length=1, max_length=1000)
