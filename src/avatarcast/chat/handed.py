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
    """An answer handed to the programme and not spoken yet, under every text it went as
    (readdressed to late askers, or replaced by the honest reply on its way to the voice)."""

    texts: list[str]
    group: Group
    answer: Answer


class Unspoken:
    """Handed answers in the order they were handed, found by any of their texts."""

    def __init__(self) -> None:
        self._items: deque[Handed] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Handed]:
        return iter(self._items)

    def add(self, text: str, group: Group, answer: Answer) -> None:
        self._items.append(Handed([text], group, answer))

    def find(self, text: str) -> Handed | None:
        return next((h for h in self._items if text in h.texts), None)

    def of(self, group: Group) -> Handed | None:
        return next((h for h in self._items if h.group is group), None)

    def pop(self, text: str) -> Handed | None:
        """The answer that went on air as ``text``, no longer unspoken."""
        h = self.find(text)
        if h is not None:
            self._items.remove(h)
        return h
