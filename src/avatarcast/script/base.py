"""What a script writer is: product segments in, checked sentences out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from avatarcast.catalog.model import Product
from avatarcast.frames import SegmentKind, Sentence


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentRequest:
    """Write talk for one segment of one product. ``media_time`` is seconds into the programme."""

    product: Product
    kind: SegmentKind
    lang: str
    media_time: float
    next_product: Product | None = None


class ScriptWriter(Protocol):
    """Writes sentences for a segment. Streams them: each one is yielded as soon as complete."""

    name: str

    def write(self, request: SegmentRequest) -> AsyncIterator[Sentence]: ...
