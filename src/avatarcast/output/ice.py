"""ICE servers offered to WHEP viewers, apart from ``output.whep`` so that naming them does not
import aiortc: a stream without WHEP viewers never loads it (its import is ~0.2 s and ~20 MB of
a stream's start-up; the fan-out process that serves viewers imports it there)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IceServer"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IceServer:
    """A STUN or TURN server offered to viewers (``stun:``, ``turn:`` or ``turns:`` URLs)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None
