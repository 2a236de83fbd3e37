"""A viewer's chat message, and what became of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ChatMessage", "Fate", "Status"]

Status = Literal["pending", "answered", "merged", "rejected", "skipped"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat line. ``time`` is media seconds (the programme's clock), so latencies compare
    with the transcript's times; ``id`` is given by the platform or assigned by the desk."""

    viewer_id: str
    name: str
    text: str
    time: float
    id: str = ""


@dataclass(slots=True, kw_only=True)
class Fate:
    """What happened to one message: answered, merged into another, rejected or skipped.

    ``handed_at`` is when the answer sentence went to the programme, ``spoken_at`` when the
    programme started speaking it (both media seconds).
    """

    message_id: str
    viewer_id: str
    name: str
    text: str
    accepted_at: float
    status: Status
    reason: str = ""
    into: str | None = None
    product_id: str | None = None
    handed_at: float | None = None
    spoken_at: float | None = None
    answer: str | None = None
    answer_kind: str | None = None
    facts: tuple[str, ...] = field(default=())

    @property
    def latency(self) -> float | None:
        """Seconds from the message to the first audio of its answer, once spoken."""
        if self.spoken_at is None:
            return None
        return max(0.0, self.spoken_at - self.accepted_at)

    def as_dict(self) -> dict[str, object]:
        lat = self.latency
        return {
            "id": self.message_id,
            "viewer_id": self.viewer_id,
            "name": self.name,
            "text": self.text,
            "outcome": self.status,
            "reason": self.reason,
            "into": self.into,
            "product_id": self.product_id,
            "accepted_t": round(self.accepted_at, 3),
            "handed_t": None if self.handed_at is None else round(self.handed_at, 3),
            "spoken_t": None if self.spoken_at is None else round(self.spoken_at, 3),
            "latency_s": None if lat is None else round(lat, 3),
            "answer": self.answer,
            "answer_kind": self.answer_kind,
            "facts": list(self.facts),
        }
