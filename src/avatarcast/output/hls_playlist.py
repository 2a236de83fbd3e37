"""HLS media playlists (RFC 8216bis, with Low-Latency HLS): rendering and the little parsing
the origin needs to answer a blocking playlist request.

The implicit AI label travels as one ``EXT-X-DATERANGE`` per segment (class
:data:`AIGC_CLASS`): the label's text as ``X-LABEL`` and the GB 45438-2025 ``AIGC`` JSON as
``X-AIGC``, hex-encoded because an HLS quoted string cannot hold the JSON's quotes. A date range
in the playlist needs no data stream in the segments, so it costs nothing per packet, reads the
same for MPEG-TS and partial segments, is visible to a CDN or a checker with a text parser, and
hls.js turns it into a metadata cue on the video element. One per segment, because a rolling
playlist drops old entries: whatever part of the window a player joins, the label is there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "AIGC_CLASS",
    "PlaylistPart",
    "PlaylistSegment",
    "parse_dateranges",
    "playlist_has",
    "render_playlist",
]

AIGC_CLASS = "org.avatarcast.aigc"


@dataclass(slots=True, kw_only=True)
class PlaylistPart:
    uri: str
    duration: float
    independent: bool


@dataclass(slots=True, kw_only=True)
class PlaylistSegment:
    msn: int
    uri: str
    duration: float
    #: wall-clock time of the segment's first frame, seconds since the epoch
    date: float
    gap: bool = False
    parts: list[PlaylistPart] = field(default_factory=list)


def iso(t: float) -> str:
    """``2026-12-06T21:44:00.123Z``: the date form HLS tags take."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _aigc_daterange(seg: PlaylistSegment, label: Mapping[str, str]) -> str:
    attrs = [
        f'ID="aigc-{seg.msn}"',
        f'CLASS="{AIGC_CLASS}"',
        f'START-DATE="{iso(seg.date)}"',
        f"DURATION={seg.duration:.3f}",
    ]
    text = label.get("ai_label", "").replace('"', "'").replace("\n", " ")
    if text:
        attrs.append(f'X-LABEL="{text}"')
    if aigc := label.get("AIGC"):
        attrs.append("X-AIGC=0x" + aigc.encode().hex().upper())
    return "#EXT-X-DATERANGE:" + ",".join(attrs)


def render_playlist(
    segments: Iterable[PlaylistSegment],
    *,
    target_duration: int,
    label: Mapping[str, str],
    part_target: float | None = None,
    open_parts: Iterable[PlaylistPart] = (),
    next_msn: int = 0,
    ended: bool = False,
) -> str:
    """A media playlist of ``segments`` (oldest first); with ``part_target`` a low-latency one
    whose trailing ``open_parts`` belong to segment ``next_msn``, still being written."""
    segs = list(segments)
    first = segs[0].msn if segs else next_msn
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", f"#EXT-X-TARGETDURATION:{target_duration}"]
    if part_target is not None:
        lines.append(
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part_target:.3f}"
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}")
    lines += [f"#EXT-X-MEDIA-SEQUENCE:{first}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for seg in segs:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(seg.date)}")
        lines.append(_aigc_daterange(seg, label))
        if part_target is not None:
            lines += [_part_line(p) for p in seg.parts]
        if seg.gap:
            lines.append("#EXT-X-GAP")
        lines += [f"#EXTINF:{seg.duration:.3f},", seg.uri]
    if part_target is not None:
        lines += [_part_line(p) for p in open_parts]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _part_line(part: PlaylistPart) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{part.uri}"{independent}'


_MEDIA_SEQUENCE = re.compile(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)", re.M)


def playlist_has(text: str, msn: int, part: int | None) -> bool:
    """Whether the playlist holds segment ``msn`` (or part ``part`` of it), or has ended: what
    a blocking playlist request (``_HLS_msn``/``_HLS_part``) waits for."""
    if "#EXT-X-ENDLIST" in text:
        return True
    m = _MEDIA_SEQUENCE.search(text)
    if m is None:
        return False
    complete = int(m.group(1)) + text.count("#EXTINF:")  # segments msn < complete are whole
    if msn < complete:
        return True
    if msn > complete or part is None:
        return False
    trailing = text.rsplit("#EXTINF:", 1)[-1].count("#EXT-X-PART:")
    return part < trailing


_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_dateranges(text: str, cls: str = AIGC_CLASS) -> list[dict[str, str]]:
    """The attributes of every ``EXT-X-DATERANGE`` of class ``cls`` (hex values decoded)."""
    found: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.startswith("#EXT-X-DATERANGE:"):
            continue
        attrs: dict[str, str] = {}
        for key, value in _ATTR.findall(line.split(":", 1)[1]):
            if value.startswith('"'):
                attrs[key] = value[1:-1]
            elif value[:2].lower() == "0x":
                attrs[key] = bytes.fromhex(value[2:]).decode()
            else:
                attrs[key] = value
        if attrs.get("CLASS") == cls:
            found.append(attrs)
    return found
