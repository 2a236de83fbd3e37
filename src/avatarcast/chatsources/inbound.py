"""What every chat source hands the intake, and what it reports about itself."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Backoff", "Inbound", "Reply", "ReplyRefused", "SourceHealth", "SourceState"]

SourceState = Literal[
    "starting", "connected", "reconnecting", "quota_exceeded", "stopped", "disabled"
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """One viewer message as a platform delivered it. ``message_id`` is the platform's id
    (the de-duplication key with ``source_id``); ``viewer_id`` the platform's user id."""

    source_id: str
    platform: str
    message_id: str
    viewer_id: str
    name: str
    text: str
    #: where a written answer goes: the IRC channel, the YouTube live chat id, a reply URL
    reply_to: str = ""


class ReplyRefused(Exception):
    """A written answer the source will not send (a platform budget, not a failure): the
    message says why, starting with the reason the account counts (``quota: ...``)."""


#: Sends one written answer to a platform's chat; raises on failure (retryable or not).
Reply = Callable[[str, str], Awaitable[None]]


@dataclass(slots=True, kw_only=True)
class SourceHealth:
    """A source's connection as the stream status shows it."""

    source_id: str
    kind: str
    state: SourceState = "starting"
    connects: int = 0
    received: int = 0
    sent: int = 0
    last_error: str | None = None
    retry_in_s: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.source_id,
            "kind": self.kind,
            "state": self.state,
            "connects": self.connects,
            "received": self.received,
            "sent": self.sent,
            "last_error": self.last_error,
            "retry_in_s": self.retry_in_s,
            **self.extra,
        }


class Backoff:
    """Exponential reconnect delays with full jitter, reset after a good connection.

    0.5 s, 1 s, 2 s ... up to ``cap``: an IRC server restart is rejoined within a second or
    two, while a server that stays down is not hammered.
    """

    def __init__(self, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.failures))
        self.failures += 1
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.failures = 0
