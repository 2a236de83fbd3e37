"""The non-speech check: sound words, emoji, markup and URLs are cleaned out, not spoken."""

from __future__ import annotations

import re
import unicodedata

from avatarcast.script.guardrails.verdict import CheckResult

__all__ = ["check_speech", "clean_non_speech", "speakable"]

_SOUNDS = (
    r"ha(?:ha)+h?|he(?:he)+|hihi+|lol|lmao|hm+|u+h+m*|u+m+|e+r+m+|mm+|a+h+|o+h+h+|shh+|"
    r"pff+|ehm+|uhm+|tja|"
    r"哈{2,}|嘿{2,}|呵{2,}|嘻{2,}|嗯{2,}|啊{2,}"
)
_NON_SPEECH = [
    (re.compile(r"https?://\S+|www\.\S+|\b[\w-]+\.(?:com|nl|net|org|io|cn|shop|be|de)\b/?\S*"), ""),
    (re.compile(r"<[^<>]{1,200}>"), " "),
    (re.compile(r"\[([^\[\]]{1,200})\]\([^()]{0,300}\)"), r"\1"),  # markdown link
    (re.compile(r"\*[^*\n]{1,40}\*(?!\*)|\[[^\[\]]{0,60}\]|【[^】]{0,30}】|（[^）]{0,12}）"), " "),
    (
        re.compile(r"\([^()]{0,30}(?:laugh|music|sigh|applause|lacht|muziek|笑|音乐)[^()]{0,30}\)"),
        " ",
    ),
    (re.compile(r"(?<![^\W\d_])(?:" + _SOUNDS + r")(?![^\W\d_])", re.IGNORECASE), " "),
    (re.compile(r"[*_`~>|]+|#(?!\d)"), " "),
    (re.compile(r"(?m)^\s*(?:[-+•]|\d+\.)\s+"), ""),
    (re.compile(r"([^\W\d_])\1{2,}", re.IGNORECASE), r"\1"),  # "soooo" -> "so"
    (re.compile(r"([!?.。！？,，~…])\1+"), r"\1"),  # "!!!!" -> "!"
]
#: Symbols a catalog writes in units and names ("200 °C", "Hush™"): kept for the captions.
_UNIT_SYMBOLS = frozenset("°™®")


def _strip_symbols(text: str) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _UNIT_SYMBOLS:
            out.append(ch)
        elif cat in ("So", "Cs", "Co", "Cn") or ch in "\u200d\ufe0f\ufe0e\u20e3":
            continue
        else:
            out.append(ch)
    return "".join(out)


def clean_non_speech(text: str) -> str:
    """Text with sound words, emoji, markup, URLs and character runs removed."""
    for pattern, repl in _NON_SPEECH:
        text = pattern.sub(repl, text)
    text = _strip_symbols(text)
    text = re.sub(r"\s+([,.!?;:，。！？；：])", r"\1", text)
    text = re.sub(r"^[\s,.;:!?，。；：]+", "", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def speakable(text: str) -> int:
    """Letters and digits, a Han character counting double."""
    return sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in text if ch.isalnum())


def check_speech(original: str, cleaned: str, *, min_speakable: int) -> CheckResult:
    if speakable(cleaned) < min_speakable:
        return CheckResult("non_speech", False, f"too little speakable text in {original!r}")
    return CheckResult("non_speech", True, "" if cleaned == original.strip() else "cleaned")
