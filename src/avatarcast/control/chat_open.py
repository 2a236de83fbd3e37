"""A stream's open chat as the control plane holds it: its intake and its running sources.

See ``control.chatting`` for the registry that opens, saves and closes them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from avatarcast.chatsources import ChatIntake
from avatarcast.chatsources.inbound import SourceHealth
from avatarcast.chatsources.webhook import WebhookVerifier
from avatarcast.chatsources.youtube import YoutubeSource

__all__ = ["Source", "StreamChat"]


@dataclass(slots=True, kw_only=True)
class Source:
    """One configured source: what the API shows (``public``), its health, its task."""

    id: str
    kind: str
    public: dict[str, Any]
    health: SourceHealth
    task: asyncio.Task[None] | None = None
    verifier: WebhookVerifier | None = None
    youtube: YoutubeSource | None = None


@dataclass(slots=True, kw_only=True)
class StreamChat:
    stream_id: str
    tenant_id: str
    intake: ChatIntake
    task: asyncio.Task[None]
    sources: dict[str, Source] = field(default_factory=dict)

    def source_health(self, source: Source) -> dict[str, Any]:
        """A source's health, with its platform limit on written answers (``send``)."""
        health = source.health.as_dict()
        send = self.intake.sending_health(source.id)
        return health if send is None else {**health, "send": send}

    def health(self) -> dict[str, Any]:
        return {
            "sources": [self.source_health(s) for s in self.sources.values()],
            "account": self.intake.snapshot(),
        }
