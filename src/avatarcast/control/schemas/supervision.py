"""Supervisors, duty, on-air actions, chat and transcripts: ``XCreate`` in, ``XPublic`` out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from avatarcast.control.schemas.common import In, Out

_TEXT = r"^\S(.*\S)?$"


class SupervisorCreate(In):
    full_name: str = Field(min_length=1, max_length=200, pattern=_TEXT)
    contact: str = Field(min_length=1, max_length=200, pattern=_TEXT, description="Phone, e-mail")
    reference: str = Field(
        min_length=1, max_length=120, pattern=_TEXT, description="ID document or staff number"
    )


class SupervisorPublic(Out):
    id: str
    full_name: str
    contact: str
    reference: str
    created_at: datetime


class DutyCreate(In):
    supervisor_id: str = Field(min_length=1, max_length=32)


class DutyPublic(Out):
    stream_id: str
    supervisor_id: str | None
    since: datetime | None
    heartbeat_at: datetime | None
    timeout_s: float = Field(description="Heartbeats must come more often than this")
    safe_mode: bool = Field(description="The stream shows the 'back soon' slate")


class SayCreate(In):
    text: str = Field(min_length=1, max_length=500, pattern=r"\S")


class FaultCreate(In):
    """A glitch to put on air (``settings.monitors.fault_injection`` only): a monitors drill."""

    kind: Literal["freeze", "black", "mute_voice", "noise", "drift", "loop_writer", "stall_output"]
    seconds: float = Field(default=5.0, gt=0, le=600)
    #: the output a ``stall_output`` stalls: ``recording`` or a destination's redacted name
    target: str | None = Field(default=None, max_length=512)


class ActionResult(Out):
    stream_id: str
    action: str
    result: Any = None


class ChatMessageIn(In):
    viewer_id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=128)
    text: str = Field(min_length=1, max_length=10_000)
    time: float | None = Field(default=None, description="Sent at (ignored: media time is used)")
    id: str | None = Field(default=None, min_length=1, max_length=128)


class Fate(Out):
    id: str
    viewer_id: str
    name: str
    text: str
    outcome: Literal["pending", "answered", "merged", "rejected", "skipped"]
    reason: str = ""
    into: str | None = None
    product_id: str | None = None
    answer: str | None = None


class ChatResult(Out):
    fates: list[Fate]


class BlockResult(Out):
    stream_id: str
    message_id: str
    rejected_answers: list[str] = Field(
        description="Answers to the message that were awaiting approval, now rejected"
    )
    withdrawn_answers: list[str] = Field(
        default_factory=list,
        description="Every answer to the message taken back before it went on air: those "
        "awaiting approval and those approved but not spoken yet",
    )


class PendingAnswer(Out):
    answer_id: str
    question: str
    message_ids: list[str]
    askers: list[str]
    product_id: str | None
    answer: str
    facts: list[str]


class TranscriptLinePublic(Out):
    id: int
    run: int
    t: float = Field(description="Media seconds since the run started")
    wall_time: datetime
    text: str
    source: str = Field(description="template, llm, answer, supervisor, disclosure, ...")
    product_id: str | None
    facts: list[str]
    verdicts: dict[str, str]


class TranscriptPage(Out):
    items: list[TranscriptLinePublic]
    next_cursor: str | None = None
