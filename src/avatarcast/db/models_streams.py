"""Streams, their schedules, and the schedule windows already acted on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from avatarcast.db.base import Base, BigIntPk, JsonType, UtcDateTime, utcnow

#: What an operator wants a stream to be; the runner's actual state is reported separately.


class StreamRow(Base):
    """A stream's settings and desired state. ``product_ids`` None means the whole catalog."""

    __tablename__ = "streams"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    product_ids: Mapped[list[str] | None] = mapped_column(JsonType, default=None)
    avatar: Mapped[str] = mapped_column(String(64))
    voice: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(16))
    writer: Mapped[str] = mapped_column(String(16))
    destination_ids: Mapped[list[str]] = mapped_column(JsonType, default=list)
    record: Mapped[bool] = mapped_column(Boolean, default=False)
    desired_state: Mapped[str] = mapped_column(String(16), default="stopped")
    #: The viewer token of the stream's WHEP preview (``?token=``); not an API key.
    whep_token: Mapped[str] = mapped_column(String(64))
    #: ``{text, lang, position}`` of the AI label; it is always shown, only its wording varies.
    label: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    #: The programme's frame size and platform preset (None: the server's size, "none");
    #: the recording and WHEP take this layout, each destination may choose its own.
    size: Mapped[str | None] = mapped_column(String(16), default=None)
    preset: Mapped[str | None] = mapped_column(String(16), default=None)
    #: Viewer answers wait for a supervisor's approval before they go on air.
    approve_answers: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``{enabled, low_latency, public}`` of the stream's HLS output; None: no HLS.
    hls: Mapped[dict[str, Any] | None] = mapped_column(JsonType, default=None)
    #: A twin's mouth engine (``patches``/``onnx``; None: the pack's) and the onnx model, a
    #: ``*.mouth.json`` name in the pack's ``mouth/`` folder (None: the pack's only one).
    mouth_engine: Mapped[str | None] = mapped_column(String(16), default=None)
    mouth_model: Mapped[str | None] = mapped_column(String(128), default=None)
    #: The supervisor on duty (None: nobody; the stream cannot start).
    duty_supervisor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    duty_since: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"StreamRow(id={self.id!r}, tenant_id={self.tenant_id!r}, name={self.name!r})"


class ScheduleRow(Base):
    """A weekly window in a named timezone: on ``days`` (0 = Monday) from start to end."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    days: Mapped[list[int]] = mapped_column(JsonType)
    start_time: Mapped[str] = mapped_column(String(5))  # "HH:MM", local
    end_time: Mapped[str] = mapped_column(String(5))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ScheduleRun(Base):
    """One window the scheduler opened: the unique key makes starting it twice impossible."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "window_key"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    stream_id: Mapped[str] = mapped_column(String(32))
    window_key: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class SupervisorRow(Base):
    """A person who watches streams: who they are and how to reach them, per tenant."""

    __tablename__ = "supervisors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    full_name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200))
    #: An ID document number or staff reference, as the tenant records it.
    reference: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TranscriptLine(Base):
    """One sentence a stream spoke: media time ``t`` within run ``run``, and the wall time."""

    __tablename__ = "transcript_lines"
    __table_args__ = (Index("ix_transcript_lines_stream", "tenant_id", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    stream_id: Mapped[str] = mapped_column(String(64))
    run: Mapped[int] = mapped_column(default=0)
    t: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[datetime] = mapped_column(UtcDateTime)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[str | None] = mapped_column(String(64), default=None)
    facts: Mapped[list[str]] = mapped_column(JsonType, default=list)
    verdicts: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)


class StreamLease(Base):
    """Which API process runs a stream on air, until when: claimed in one transaction,
    renewed while it runs, taken over by another process once ``expires_at`` passed."""

    __tablename__ = "stream_leases"

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
