"""Chat text for matching: language guess, tokens, stems and product-vocabulary concepts.

Viewers ask in their own words ("how big is it?", "hoeveel past erin?", "容量多大?") while the
catalog says "Capacity: 5.5 litres". Both sides are reduced to the same tokens: light stems for
English and Dutch, and ``#concept`` tokens from a small vocabulary of product questions, so a
question and the fact it asks about share tokens even across wording and language. Chinese has
no spaces: it is cut by longest match against that vocabulary, and what is left over stays as
unknown runs, which is what lets retrieval say "I don't know" instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from avatarcast.chat.lexicon import CATEGORY_ALIASES, CONCEPTS, PHRASES, STOPWORDS, ZH_NEUTRAL

__all__ = ["Token", "detect_lang", "fold", "latin_lang_of", "stem", "tokenize"]

_L = r"[^\W_\u3400-\u9fff]"
_WORD = re.compile(rf"{_L}+(?:[-']{_L}+)*|[\u3400-\u9fff]+")
_HAN = re.compile(r"[\u3400-\u9fff]")


def fold(text: str) -> str:
    """NFKC, casefolded, typographic apostrophes and dashes made plain."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return text.replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")


def detect_lang(text: str, default: str) -> str:
    """``zh`` when the text has Han characters, otherwise the stream's language."""
    return "zh" if _HAN.search(text) else default


def latin_lang_of(text: str) -> str | None:
    """ "en" or "nl" when the text's function words say so clearly; None when they don't.

    Counts the words that are stopwords in one language only ("what", "the" vs "hoeveel",
    "de"), so a question with shared words only ("Timer?") stays with the stream's language.
    """
    words = re.findall(r"[^\W\d_]+", re.sub(r"@\S+", " ", fold(text)))
    en = sum(1 for w in words if w in _STOP_ONLY["en"])
    nl = sum(1 for w in words if w in _STOP_ONLY["nl"])
    if en == nl:
        return None
    return "en" if en > nl else "nl"


def stem(word: str, lang: str) -> str:
    """A light suffix stripper: "litres" matches "litre", "weegt" matches "wegen" roughly."""
    w = word
    if w.isdigit() or len(w) <= 3:
        return w
    if lang == "nl":
        for suffix in ("tjes", "jes", "tje", "en", "e", "s", "t"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w = w[: -len(suffix)]
                break
        w = re.sub(r"([bcdfghjklmnpqrstvwxz])\1$", r"\1", w)
        return re.sub(r"([aeou])\1([^aeiou])$", r"\1\2", w)
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            w = w[: -len(suffix)] + repl
            break
    w = re.sub(r"([bcdfghjklmnpqrstvwxz])\1$", r"\1", w)
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


@dataclass(frozen=True, slots=True)
class Token:
    """One unit of meaning: its surface stem (or ``None`` for a concept-only unit) and concepts.

    ``known`` is False for a leftover Chinese run that matched no vocabulary: it still counts
    as something the question asks about.
    """

    term: str | None
    concepts: tuple[str, ...] = ()
    known: bool = True

    def alternatives(self) -> tuple[str, ...]:
        head = (self.term,) if self.term is not None else ()
        return head + tuple("#" + c for c in self.concepts)


def _latin_lang(lang: str) -> str:
    return "nl" if lang == "nl" else "en"


def _concept_index() -> tuple[dict[tuple[str, str], tuple[str, ...]], list[tuple[str, str]]]:
    """(lang, stem) -> concepts for en/nl; and Chinese (variant, concept) longest first."""
    latin: dict[tuple[str, str], list[str]] = {}
    han: list[tuple[str, str]] = []
    for concept, by_lang in CONCEPTS.items():
        for lang, variants in by_lang.items():
            for v in variants.split():
                if lang == "zh":
                    han.append((v, concept))
                    continue
                for other in ("en", "nl"):  # a brand-new word in one is often borrowed by both
                    if other == lang or lang == "en":
                        latin.setdefault((other, stem(v, other)), []).append(concept)
    frozen = {k: tuple(dict.fromkeys(v)) for k, v in latin.items()}
    han.sort(key=lambda x: len(x[0]), reverse=True)
    return frozen, han


_LATIN_CONCEPTS, _HAN_CONCEPTS = _concept_index()
_NL_WORDS = [(w, c) for c, by in CONCEPTS.items() for w in by.get("nl", "").split() if len(w) >= 5]
_STOP = {lang: frozenset(words.split()) for lang, words in STOPWORDS.items()}
_STOP_ONLY = {"en": _STOP["en"] - _STOP["nl"], "nl": _STOP["nl"] - _STOP["en"]}
_PHRASES = [(re.compile(p), repl) for p, repl in PHRASES]
_ALIASES = sorted(CATEGORY_ALIASES.items(), key=lambda kv: len(kv[0]), reverse=True)
_NEUTRAL = sorted(ZH_NEUTRAL.split(), key=len, reverse=True)


def canonical(text: str) -> str:
    """``text`` folded, with category aliases ("air fryer") mapped to one word ("airfryer").

    Questions and product names go through the same mapping, so they meet on the same words.
    """
    text = fold(text)
    for alias, word in _ALIASES:
        text = text.replace(alias, f" {word} ")
    return text


def _prepare(text: str) -> str:
    text = canonical(re.sub(r"@\S+", " ", text))  # "@Sanne": the host's name asks nothing
    for pattern, repl in _PHRASES:
        text = pattern.sub(repl, text)
    return text


def tokenize(text: str, lang: str, *, keep_stopwords: bool = False) -> list[Token]:
    """Tokens of ``text`` read as ``lang`` ("en", "nl" or "zh"); Latin runs inside Chinese too."""
    out: list[Token] = []
    latin = _latin_lang(lang)
    for m in _WORD.finditer(_prepare(text)):
        word = m.group(0)
        if _HAN.match(word):
            out.extend(_han_tokens(word))
            continue
        for part in _parts(word, latin):
            if not keep_stopwords and part in _STOP[latin]:
                continue
            s = stem(part, latin)
            out.append(Token(s, _LATIN_CONCEPTS.get((latin, s)) or _compound(s, latin)))
    return out


def _compound(s: str, lang: str) -> tuple[str, ...]:
    """Dutch compounds ("temperatuurbereik"): the concepts of a long known word they start with."""
    if lang != "nl" or len(s) < 8:
        return ()
    for word, concept in _NL_WORDS:
        if s.startswith(word):
            return (concept,)
    return ()


def _parts(word: str, lang: str) -> list[str]:
    """A hyphenated word whole if the vocabulary knows it ("usb-c"), else its parts ("5-litre")."""
    if "-" not in word or (lang, stem(word, lang)) in _LATIN_CONCEPTS:
        return [word]
    return [p for p in word.split("-") if p]


def _han_tokens(run: str) -> list[Token]:
    """Longest match against the vocabulary; leftover characters form unknown runs."""
    out: list[Token] = []
    leftover = ""
    i = 0
    while i < len(run):
        hit = next(((v, c) for v, c in _HAN_CONCEPTS if run.startswith(v, i)), None)
        if hit is not None:
            concepts = tuple(dict.fromkeys(c for v, c in _HAN_CONCEPTS if v == hit[0]))
            out.extend(_flush(leftover))
            leftover = ""
            out.append(Token(None, concepts))
            i += len(hit[0])
            continue
        neutral = next((n for n in _NEUTRAL if run.startswith(n, i)), None)
        if neutral is not None:
            out.extend(_flush(leftover))
            leftover = ""
            i += len(neutral)
            continue
        leftover += run[i]
        i += 1
    out.extend(_flush(leftover))
    return out


def _flush(leftover: str) -> list[Token]:
    return [Token("~" + leftover, (), known=False)] if leftover else []
