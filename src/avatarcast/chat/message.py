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

    The stamps (media seconds) follow one answer through the pipeline, so a slow answer can be
    traced to its stage: ``held_at`` the merge hold ended, ``written_at`` the answer text was
    ready (model reply and its guardrail check included), ``handed_at`` it went to the
    programme, ``checked_at`` it passed the guardrails on its way to the voice, ``voiced_at``
    its audio was synthesised, ``spoken_at`` the programme started speaking it.
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
    held_at: float | None = None
    written_at: float | None = None
    handed_at: float | None = None
    checked_at: float | None = None
    voiced_at: float | None = None
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
            "held_t": _r(self.held_at),
            "written_t": _r(self.written_at),
            "handed_t": _r(self.handed_at),
            "checked_t": _r(self.checked_at),
            "voiced_t": _r(self.voiced_at),
            "spoken_t": _r(self.spoken_at),
            "latency_s": None if lat is None else round(lat, 3),
            "answer": self.answer,
            "answer_kind": self.answer_kind,
            "facts": list(self.facts),
        }


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 3)
