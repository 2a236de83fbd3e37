"""Streams and schedules: ``XCreate`` in, ``XUpdate`` for PATCH, ``XPublic`` out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from avatarcast.control.schemas.common import In, Out
from avatarcast.pipeline.spec import (
    LabelChoice,
    MouthEngineName,
    MouthModelName,
    Preset,
    ProgrammeChoices,
    Size,
    Writer,
)

DesiredState = Literal["stopped", "live", "paused"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = Field(min_length=1, max_length=120, pattern=r"^\S(.*\S)?$")
_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


#: the AI label's wording and place, as a stream stores and shows it
LabelConfigIn = LabelChoice


class HlsConfigIn(In):
    """HLS for shop pages and CDNs, muxed from the stream's one encode (no second encode)."""

    enabled: bool = True
    low_latency: bool = Field(default=False, description="Low-Latency HLS: partial segments")
    public: bool = Field(
        default=False,
        description="Anyone may play it (for a public CDN); else the viewer token is needed",
    )


class StreamCreate(ProgrammeChoices, In):
    """A new stream: the programme's choices (``pipeline.spec.ProgrammeChoices``, the one shape
    of them), what it presents, and where it goes."""

    name: str = _NAME
    product_ids: list[str] | None = Field(
        default=None, max_length=10_000, description="Products to present; null = all, in order"
    )
    destination_ids: list[str] = Field(default_factory=list, max_length=20)
    record: bool = Field(default=False, description="Record to the server's recordings folder")
    approve_answers: bool = Field(
        default=False, description="Viewer answers wait for a supervisor's approval"
    )
    hls: HlsConfigIn | None = Field(default=None, description="HLS output; null: none")


class StreamUpdate(In):
    label: LabelConfigIn | None = None
    approve_answers: bool | None = None


class DestinationHealth(Out):
    name: str = Field(description="The destination URL, its stream key redacted")
    state: str
    bytes_sent: int = 0
    reconnects: int = 0
    last_error: str | None = None
    layout: str | None = Field(default=None, description="The layout it takes: SIZE/PRESET")


class LayoutHealth(Out):
    """One shape the stream is drawn in, which outputs take it, and a preview still."""

    layout: str = Field(description="SIZE/PRESET, e.g. 720x1280/tiktok")
    size: str
    preset: str
    destinations: list[str] = Field(default_factory=list)
    recording: bool = False
    whep: bool = False
    still: str | None = Field(
        default=None, description="A small JPEG preview of the last frame, as a data: URL"
    )


class HlsHealth(Out):
    state: str = Field(description="ok, failing (its folder cannot be written), closed")
    segments: int = 0
    failures: int = 0
    recoveries: int = 0
    backlog: int = Field(default=0, description="Segments held in memory until they can be written")
    gaps: int = 0
    last_error: str | None = None


class MouthHealth(Out):
    """A twin's mouth engine as the worker reports it (absent for the drawn presenter)."""

    engine: str = Field(description="The engine drawing the mouth now: patches or onnx")
    model: str | None = Field(default=None, description="The onnx model's name")
    miss_rate: float | None = Field(default=None, description="Late crops, recent window")
    fallbacks: int = Field(default=0, description="Switches from onnx to patches so far")


class StreamHealth(Out):
    """What the stream is doing now, from its runner and the worker's last report."""

    state: str = Field(description="starting, live, paused, stopping, stopped, failed, crashed…")
    restarts: int = 0
    node: str | None = Field(
        default=None, description="The cluster node that runs it (Ray backend); null locally"
    )
    uptime_s: float | None = None
    frames: int | None = None
    fps: float | None = None
    av_offset_ms: float | None = None
    encode_lag_ms: float | None = None
    late_frames: int | None = Field(
        default=None,
        description="Frames of this run made more than a frame period after their wall-clock time",
    )
    product_id: str | None = None
    price: str | None = None
    sentence: str | None = None
    slate: str | None = Field(
        default=None,
        description="The words on the safe slate while it is on air, e.g. 'Waiting for a "
        "supervisor' (nobody has watched yet) or 'We'll be right back' (heartbeats lapsed)",
    )
    destinations: list[DestinationHealth] = Field(default_factory=list)
    layouts: list[LayoutHealth] = Field(default_factory=list)
    recording: bool = Field(
        default=False, description="A recording is being written (where is the server's business)"
    )
    hls: HlsHealth | None = None
    mouth: MouthHealth | None = None
    chat: dict[str, Any] | None = Field(
        default=None,
        description="Platform chat: each source's connection and the account of fates",
    )
    last_error: str | None = None


class StreamPublic(Out):
    id: str
    name: str
    product_ids: list[str] | None
    avatar: str
    voice: str
    lang: str
    writer: Writer
    destination_ids: list[str]
    record: bool
    label: LabelConfigIn
    approve_answers: bool
    size: Size | None = None
    preset: Preset = "none"
    mouth_engine: MouthEngineName | None = Field(
        default=None, description="A twin's chosen mouth engine; null: the pack's own"
    )
    mouth_model: MouthModelName | None = None
    supervisor_on_duty: str | None = Field(description="The supervisor on duty, if any")
    desired_state: DesiredState
    status: StreamHealth
    whep_url: str = Field(description="WHEP endpoint (POST an SDP offer with ?token=)")
    player_url: str = Field(description="A browser player page (add ?token=)")
    whep_token: str | None = Field(
        default=None,
        description="Viewer token for whep_url; shown to operator and admin keys and to keys "
        "linked to a supervisor record",
    )
    hls: HlsConfigIn | None = None
    hls_url: str | None = Field(
        default=None, description="The HLS playlist (add ?token= unless hls.public)"
    )
    embed_url: str | None = Field(
        default=None, description="An embeddable HLS player page (add ?token= unless hls.public)"
    )
    created_at: datetime
    updated_at: datetime


class StreamPage(Out):
    items: list[StreamPublic]
    next_cursor: str | None = None


class ScheduleCreate(In):
    stream_id: str = _ID
    name: str = _NAME
    timezone: str = Field(min_length=1, max_length=64, examples=["Europe/Amsterdam"])
    days: list[Weekday] = Field(min_length=1, max_length=7, description="Days a window starts")
    start: str = Field(pattern=_HHMM, description="Local start time, HH:MM")
    end: str = Field(pattern=_HHMM, description="Local end time; before start = next day")
    enabled: bool = True

    @model_validator(mode="after")
    def _not_empty(self) -> ScheduleCreate:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class ScheduleUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=120, pattern=r"^\S(.*\S)?$")
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    days: list[Weekday] | None = Field(default=None, min_length=1, max_length=7)
    start: str | None = Field(default=None, pattern=_HHMM)
    end: str | None = Field(default=None, pattern=_HHMM)
    enabled: bool | None = None


class Window(Out):
    starts_at: datetime
    ends_at: datetime


class SchedulePublic(Out):
    id: str
    stream_id: str
    name: str
    timezone: str
    days: list[Weekday]
    start: str
    end: str
    enabled: bool
    next_window: Window | None = Field(description="The open or next window, in UTC")
    created_at: datetime
    updated_at: datetime
