"""The banned-terms check: superlatives and promises from ``configs/lexicons/{lang}.txt``."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from avatarcast.errors import ConfigError
from avatarcast.script.guardrails.verdict import CheckResult

__all__ = ["check_banned", "load_lexicon"]


def load_lexicon(path: Path, lang: str) -> re.Pattern[str] | None:
    """One term per line, ``re:`` for a regular expression; ``# `` starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    parts = []
    for line in lines:
        line = re.split(r"(?:^|\s)#(?=\s|$)", line, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("re:"):
            body = line[3:]
            try:
                re.compile(body)
            except re.error as exc:
                raise ConfigError(f"bad regular expression {body!r} in {path}: {exc}") from exc
            parts.append(f"(?:{body})")
        else:
            parts.append(re.escape(unicodedata.normalize("NFKC", line).casefold()))
    if not parts:
        return None
    alternation = "|".join(sorted(parts, key=len, reverse=True))
    if lang == "zh":
        return re.compile(alternation, re.IGNORECASE)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


def check_banned(
    text: str, lexicon: re.Pattern[str] | None, fact_values: Iterable[str]
) -> CheckResult:
    """``text`` is case-folded. A merchant's own fact value is quoted, not claimed."""
    if lexicon is None:
        return CheckResult("banned_terms", True)
    for value in fact_values:
        text = text.replace(value, " ")
    hits = sorted({m.group(0) for m in lexicon.finditer(text)})
    return CheckResult("banned_terms", not hits, ", ".join(repr(h) for h in hits))
