"""The AI label's wording must still disclose AI: a term per language, read from configs.

The label is always drawn, but its text is the operator's to choose; without this check it
could be reworded into ``"."`` or ``"LIVE"`` and disclose nothing. A term matches as a whole
word in alphabetic scripts (case-insensitive: "AI" in "AI-generated", not in "said"), and
anywhere in scripts written without spaces (CJK).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from avatarcast.errors import ConfigError

__all__ = ["DEFAULT_TERMS_FILE", "DisclosureTerms", "load_terms"]

#: the list in the working folder, else the one in the source tree
DEFAULT_TERMS_FILE = Path("configs/ai-disclosure.toml")


def _find(path: Path) -> Path:
    if path.is_file() or path.is_absolute():
        return path
    return Path(__file__).resolve().parents[3] / path


def _spaceless(term: str) -> bool:
    """Written without spaces between words: a CJK term matches anywhere."""
    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in term)


@dataclass(frozen=True, slots=True)
class DisclosureTerms:
    by_lang: Mapping[str, Sequence[str]]

    def terms_for(self, lang: str) -> Sequence[str]:
        base = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
        for key in (lang.strip().lower(), base, "default"):
            if key in self.by_lang:
                return self.by_lang[key]
        return ()

    def discloses(self, text: str, lang: str) -> bool:
        folded = text.casefold()
        for term in self.terms_for(lang):
            t = term.casefold()
            if _spaceless(term):
                if t in folded:
                    return True
            elif re.search(rf"(?<![^\W_]){re.escape(t)}(?![^\W_])", folded):
                return True
        return False


#: Used only when the default file is not shipped (a bare package install without configs/).
FALLBACK_TERMS: dict[str, tuple[str, ...]] = {
    "default": ("AI",),
    "en": ("AI", "artificial intelligence"),
    "nl": ("AI", "KI", "kunstmatige intelligentie"),
    "de": ("KI", "AI", "künstliche Intelligenz"),
    "zh": ("AI", "人工智能"),
}


def load_terms(path: Path = DEFAULT_TERMS_FILE) -> DisclosureTerms:
    """The ``[terms]`` table of ``path``; a missing or malformed file is a ConfigError (the
    default file missing everywhere: :data:`FALLBACK_TERMS`)."""
    found = _find(path)
    if path == DEFAULT_TERMS_FILE and not found.is_file():
        return DisclosureTerms(FALLBACK_TERMS)
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"AI disclosure terms {str(found)!r}: {e}") from None
    table = data.get("terms")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"AI disclosure terms {str(found)!r}: no [terms] table")
    by_lang: dict[str, tuple[str, ...]] = {}
    for lang, terms in table.items():
        if (
            not isinstance(terms, list)
            or not terms
            or not all(isinstance(t, str) and t.strip() for t in terms)
        ):
            raise ConfigError(
                f"AI disclosure terms {str(found)!r}: {lang!r} must be a list of words"
            )
        by_lang[lang.lower()] = tuple(terms)
    return DisclosureTerms(by_lang)
