"""What a live programme reports about itself, as typed values from the frame loop to the API.

The worker writes a :class:`LiveStatus` as one JSON line about every second
(:meth:`LiveStatus.as_dict`); the stream backend reads it back into the same type with
:meth:`LiveStatus.from_wire`, so the control plane reads attributes, never a dict it has to
re-check with ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter

from avatarcast.output.hls import HlsStatus

__all__ = ["DestinationStatus", "LayoutStatus", "LiveStatus"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationStatus:
    """One RTMP destination: its redacted name, connection state and counters."""

    name: str
    state: str
    bytes_sent: int = 0
    reconnects: int = 0
    last_error: str | None = None
    #: the layout (``SIZE/PRESET``) it takes; None for a destination refused before going live
    layout: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayoutStatus:
    """One layout on air: its shape, who takes it, and a preview still of its last frame."""

    layout: str
    size: str
    preset: str
    #: a small JPEG ``data:`` URL of its last frame (None before the first frame)
    still: str | None = None
    #: the redacted names of the destinations that take it
    destinations: tuple[str, ...] = ()
    #: whether the recording and WHEP take it (they take the programme's own layout)
    recording: bool = False
    whep: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveStatus:
    """A snapshot of a live programme (``as_dict`` is what a worker reports as JSON)."""

    state: str
    uptime_s: float = 0.0
    frames: int = 0
    media_time_s: float = 0.0
    fps: float = 0.0
    av_offset_ms: float = 0.0
    encode_lag_ms: float = 0.0
    max_lag_ms: float = 0.0
    late_frames: int = 0
    stage_cpu_s: dict[str, float] = field(default_factory=dict)
    product_id: str | None = None
    price: str | None = None
    sentence: str | None = None
    muted: bool = False
    #: the words on the safe-mode slate while it is on air ("Waiting for a supervisor", ...)
    slate: str | None = None
    destinations: tuple[DestinationStatus, ...] = ()
    #: every layout on air, the programme's own first
    layouts: tuple[LayoutStatus, ...] = ()
    whep_url: str | None = None
    whep_error: str | None = None
    recording_dir: str | None = None
    #: the latest commands applied, each with the pts it took effect (``Applied.brief``)
    commands: tuple[dict[str, Any], ...] = ()
    #: the HLS folder's writer, when the stream makes HLS
    hls: HlsStatus | None = None
    #: a twin's mouth engine: ``engine`` drawing now (``onnx``/``patches``), and for ``onnx``
    #: its model, hits/misses, miss rate and ``switches`` (each with the frame it happened at)
    mouth: dict[str, Any] | None = None
    #: the on-air monitors: glitches and remedies so far by name, each metric's last value
    monitors: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["destinations"] = [asdict(d) for d in self.destinations]
        out["layouts"] = [
            {**asdict(lay), "destinations": list(lay.destinations)} for lay in self.layouts
        ]
        out["commands"] = list(self.commands)
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LiveStatus:
        """A status line read back (fields a newer worker adds are ignored); raises
        ``pydantic.ValidationError`` naming the field for one of the wrong type."""
        return _ADAPTER.validate_python(dict(data))


_ADAPTER: TypeAdapter[LiveStatus] = TypeAdapter(LiveStatus)
