"""The desk's groups of askers, and the answers handed to the programme but not spoken yet."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from avatarcast.chat.answers import Answer
from avatarcast.chat.message import Fate

__all__ = ["Group", "Handed", "Unspoken"]


@dataclass(slots=True)
class Group:
    """A question and the near-identical ones merged into it: one answer for all askers."""

    lead: Fate
    key: str
    members: list[Fate] = field(default_factory=list)

    @property
    def fates(self) -> list[Fate]:
        return [self.lead, *self.members]


@dataclass(slots=True)
class Handed:
    """An answer handed to the programme and not spoken yet. Its sentence id stays the same
    whatever text it goes as (readdressed to late askers, or the honest reply in its place)."""

    id: str
    group: Group
    answer: Answer


class Unspoken:
    """Handed answers in the order they were handed, found by their sentence id."""

    def __init__(self) -> None:
        self._items: deque[Handed] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Handed]:
        return iter(self._items)

    def add(self, sentence_id: str, group: Group, answer: Answer) -> None:
        self._items.append(Handed(sentence_id, group, answer))

    def find(self, sentence_id: str) -> Handed | None:
        return next((h for h in self._items if h.id == sentence_id), None)

    def of(self, group: Group) -> Handed | None:
        return next((h for h in self._items if h.group is group), None)

    def pop(self, sentence_id: str) -> Handed | None:
        """The answer that went on air with ``sentence_id``, no longer unspoken."""
        h = self.find(sentence_id) if sentence_id else None
        if h is not None:
            self._items.remove(h)
        return h
