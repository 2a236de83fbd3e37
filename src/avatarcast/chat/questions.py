"""What counts as a question, and the form two questions are compared in for merging."""

from __future__ import annotations

import re

from avatarcast.chat.text import fold

__all__ = ["is_question", "merge_key"]

_QUESTION_WORDS = {
    "en": "how what which does do did is are can could will would where when why who whats "
    "hows any anyone has have should",
    "nl": "hoe wat welke welk heeft hebben is zijn kan kun kunt mag moet wanneer waarom wie "
    "waar hoeveel zit past gaat werkt",
}
_ZH_QUESTION = re.compile(
    r"[吗呢嘛么]|多少|什么|怎么|几|哪|是否|能不能|有没有|可不可以|是不是|多大|多重|多久"
)


def is_question(text: str, lang: str) -> bool:
    """A question mark, a leading question word or a Chinese question particle."""
    if "?" in text or "？" in text or _ZH_QUESTION.search(text):
        return True
    words = re.findall(r"[^\W\d_]+", re.sub(r"@\S+", " ", fold(text)))
    starters = set(_QUESTION_WORDS.get(lang, "").split()) | set(_QUESTION_WORDS["en"].split())
    return bool(words) and words[0] in starters


def merge_key(text: str) -> str:
    """A question as compared for merging: folded words, without @mentions."""
    return " ".join(re.findall(r"[^\W_]+", re.sub(r"@\S+", " ", fold(text))))
