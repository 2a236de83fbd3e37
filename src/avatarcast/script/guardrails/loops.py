"""The loops check: nothing said twice within the loop window, and no stutters.

Loop detection compares normalised sentences (NFKC, case-folded, words and digits only). A
stutter is an n-gram immediately repeated; a decimal ("5.5", "€99.99") is one token, and a
repetition the catalog itself contains ("Bluetooth: Bluetooth 5.3" from a label and its value)
is quoting, not stuttering.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable

from avatarcast.script.guardrails.verdict import CheckResult

__all__ = ["LoopMemory", "normalise", "stutter"]

_INTENSIFIERS = frozenset("very so really much no heel echt zeer erg nee".split())
_STUTTER_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")


def normalise(text: str) -> str:
    """Lowercase words and digits only: how loop detection compares sentences."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"[^\W_]+", text))


def _stutter_tokens(text: str, lang: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    if lang == "zh":
        return list("".join(_STUTTER_TOKEN.findall(folded)))
    return _STUTTER_TOKEN.findall(folded)


def stutter(text: str, lang: str, *, quoted: Iterable[str] = ()) -> str:
    """A phrase said twice or more back to back ("free shipping free shipping"), or "".

    ``quoted``: catalog texts; a repetition that occurs in one of them is not a stutter.
    """
    tokens = _stutter_tokens(text, lang)
    sizes = range(2, 9) if lang == "zh" else range(1, 7)
    joiner = "" if lang == "zh" else " "
    sources: list[str] | None = None
    for n in sizes:
        for i in range(len(tokens) - 2 * n + 1):
            if tokens[i : i + n] != tokens[i + n : i + 2 * n]:
                continue
            triple = tokens[i + 2 * n : i + 3 * n] == tokens[i : i + n]
            if n == 1 and tokens[i] in _INTENSIFIERS and not triple:
                continue
            if sources is None:
                sources = [f" {joiner.join(_stutter_tokens(q, lang))} " for q in quoted]
            doubled = joiner.join(tokens[i : i + 2 * n])
            padded = doubled if lang == "zh" else f" {doubled} "  # zh has no word boundaries
            if not triple and any(padded in q for q in sources):
                continue
            return joiner.join(tokens[i : i + n])
    return ""


class LoopMemory:
    """Normalised sentences said within ``window`` seconds of media time."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._spoken: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()

    def commit(self, text: str, media_time: float) -> None:
        key = normalise(text)
        self._spoken[key] = media_time
        self._order.append((media_time, key))
        while self._order and media_time - self._order[0][0] > self.window:
            t, old = self._order.popleft()
            if self._spoken.get(old) == t:
                del self._spoken[old]

    def check(
        self,
        text: str,
        lang: str,
        media_time: float,
        *,
        quoted: Iterable[str] = (),
        repeat_ok: bool = False,
    ) -> CheckResult:
        """``repeat_ok``: the text must be said again when due (the AI disclosure)."""
        last = self._spoken.get(normalise(text))
        if last is not None and media_time - last < self.window and not repeat_ok:
            return CheckResult("loops", False, f"said {media_time - last:.0f} s ago")
        found = stutter(text, lang, quoted=quoted)
        if found:
            return CheckResult("loops", False, f"stutter {found!r}")
        return CheckResult("loops", True)
