"""Sorts a chat message into question / greeting / spam / abuse / other.

Pure and thread-safe: the intake runs it in a worker thread over whole batches, so a flood is
classified beside the event loop, never on a stream's frame loop. Abuse and spam come from the
stream moderator's content checks (lexicons, injections, links), plus the shapes of chat spam
that carry no bad word: a line that is mostly one repeated character or word, or shouting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from avatarcast.chat.moderation import Moderator
from avatarcast.chat.questions import is_question
from avatarcast.chat.text import fold

__all__ = ["Classified", "Kind", "classify"]

Kind = Literal["question", "greeting", "spam", "abuse", "other"]

_ABUSE = frozenset({"abuse", "injection"})
_GREETING = re.compile(
    r"^(?:hi+|hey+|hello+|hallo+|hoi+|heey+|yo+|hiya|howdy|greetings|good (?:morning|evening|"
    r"afternoon|night)|goede(?:morgen|middag|navond)|goeie(?:morgen|middag|navond)?|dag|"
    r"moi+|welkom|sup|gm|gn)\b",
)


@dataclass(frozen=True, slots=True)
class Classified:
    kind: Kind
    reason: str = ""
    #: the sender's display name may be shown and said
    name_ok: bool = True


def classify(
    moderator: Moderator, text: str, name: str, lang: str, names: dict[str, bool] | None = None
) -> Classified:
    """What ``text`` is, with the reason for spam and abuse (the moderator's wording).

    ``names``: display names already checked (a viewer's name is checked once, not with
    every message they send); the caller bounds it.
    """
    name_ok = names.get(name) if names is not None else None
    if name_ok is None:
        name_ok = not name.strip() or moderator.check_text(name) is None
        if names is not None:
            names[name] = name_ok
    rejection = moderator.check_text(text)
    if rejection is not None:
        kind: Kind = "abuse" if rejection.kind in _ABUSE else "spam"
        return Classified(kind, str(rejection), name_ok)
    shape = _spam_shape(text)
    if shape:
        return Classified("spam", shape, name_ok)
    if is_question(text, lang):
        return Classified("question", "", name_ok)
    if _GREETING.match(fold(text).strip()):
        return Classified("greeting", "", name_ok)
    return Classified("other", "", name_ok)


_DOMAIN = re.compile(
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|tv|gg|ly|xyz|shop|nl|be|de|example)\b"
)


def _spam_shape(text: str) -> str:
    stripped = text.strip()
    if _DOMAIN.search(stripped.casefold()):
        return "spam: a web address"
    letters = [c for c in stripped if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.8:
        return "spam: shouting"
    if len(stripped) >= 12 and max(stripped.count(c) for c in set(stripped)) / len(stripped) > 0.6:
        return "spam: one repeated character"
    words = stripped.casefold().split()
    if len(words) >= 6 and max(words.count(w) for w in set(words)) / len(words) > 0.6:
        return "spam: one repeated word"
    return ""
