"""Guardrails: every sentence is checked against the live catalog before it is spoken.

The operator is liable for every word the host says, so the checks refuse rather than guess.
Each check is named and lives in its own module (speech, numbers, claims, lexicon, urgency,
loops); its result goes into ``Sentence.verdicts`` and the transcript. The method is described
in docs/guardrails.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.errors import ConfigError
from avatarcast.frames import Sentence
from avatarcast.script.guardrails.claims import Vocabulary, check_claims, template_vocabulary
from avatarcast.script.guardrails.evidence import Evidence, build_evidence, stem
from avatarcast.script.guardrails.lexicon import check_banned, load_lexicon
from avatarcast.script.guardrails.loops import LoopMemory, normalise, stutter
from avatarcast.script.guardrails.numbers import check_numbers, parse_numbers
from avatarcast.script.guardrails.speech import check_speech, clean_non_speech
from avatarcast.script.guardrails.urgency import check_urgency
from avatarcast.script.guardrails.verdict import CHECKS, CheckResult, Refusal, Verdict

__all__ = [
    "CHECKS",
    "DEFAULT_LEXICONS",
    "CheckResult",
    "Guardrails",
    "Refusal",
    "Verdict",
    "Vocabulary",
    "clean_non_speech",
    "default_lexicon_dir",
    "load_lexicon",
    "normalise",
    "parse_numbers",
    "stem",
    "stutter",
    "template_vocabulary",
]

DEFAULT_LEXICONS = Path("configs/lexicons")
_SHIPPED_LEXICONS = Path(__file__).resolve().parents[4] / "configs" / "lexicons"
_TRUSTED_SOURCES = frozenset({"supervisor", "disclosure"})
#: Sources whose sentences are fixed phrasing plus the catalog facts they cite.
_FIXED_SOURCES = frozenset({"template"})


def default_lexicon_dir() -> Path:
    """``configs/lexicons`` in the working directory, else the one shipped with the source."""
    if DEFAULT_LEXICONS.is_dir() or not _SHIPPED_LEXICONS.is_dir():
        return DEFAULT_LEXICONS
    return _SHIPPED_LEXICONS


class Guardrails:
    """Checks sentences against the live catalog, the lexicons and what was said recently.

    Not thread-safe; one instance per stream. ``media_time`` is passed in, never read from a
    clock, so replays decide exactly as the live stream did.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        lang: str,
        lexicon_dir: Path = DEFAULT_LEXICONS,
        loop_window: float = 900.0,
        min_speakable: int = 6,
        coverage: float = 0.7,
        low_stock: int = 10,
    ) -> None:
        self.catalog = catalog
        self.lang = lang
        self.lexicon_dir = Path(lexicon_dir)
        self.loop_window = loop_window
        self.min_speakable = min_speakable
        self.coverage = coverage
        self.low_stock = low_stock
        self._lexicons: dict[str, re.Pattern[str] | None] = {}
        self._evidence: dict[tuple[str, str], Evidence] = {}
        self._prices_seen: dict[str, set[Decimal]] = {}
        self._loops = LoopMemory(loop_window)
        if not (self.lexicon_dir / f"{lang}.txt").is_file():
            raise ConfigError(f"no banned-terms lexicon for {lang!r} in {self.lexicon_dir}")

    # --- public --------------------------------------------------------------------------------

    def check(
        self,
        sentence: Sentence,
        *,
        product: Product | None,
        media_time: float,
        offer_end: float | None = None,
    ) -> Verdict:
        """Run every check. ``offer_end`` is the media time a real offer ends, if there is one.

        The sentence is checked against the product it is about (``sentence.product_id``, e.g.
        the next product a transition names), read from the live catalog.
        """
        lang = sentence.lang or self.lang
        live = self._live(sentence, product)
        if product is not None:
            seen = self._prices_seen.setdefault(product.id, set())
            seen.update({product.current_price.normalize(), product.price.normalize()})
        text = clean_non_speech(sentence.text)
        results = [check_speech(sentence.text, text, min_speakable=self.min_speakable)]
        ev = self._evidence_for(live, lang) if live is not None else None
        facts: list[str] = []
        lowered = unicodedata.normalize("NFKC", text).casefold()
        if sentence.source in _TRUSTED_SOURCES:
            results += [
                CheckResult("numbers", True, "trusted"),
                CheckResult("claims", True, "trusted"),
            ]
        else:
            seen_prices = self._prices_seen.get(live.id, set()) if live is not None else set()
            results.append(_numbers(lowered, live, ev, seen_prices, facts))
            results.append(
                check_claims(
                    lowered,
                    lang,
                    sentence.facts,
                    ev,
                    fixed=sentence.source in _FIXED_SOURCES,
                    coverage=self.coverage,
                    facts=facts,
                )
            )
        values = ev.fact_values if ev is not None else ()
        results.append(check_banned(lowered, self._lexicon(lang), values))
        results.append(
            check_urgency(
                lowered,
                live,
                media_time=media_time,
                offer_end=offer_end,
                low_stock=self.low_stock,
            )
        )
        quoted = [p.text for p in ev.passages] if ev is not None else []
        repeat_ok = sentence.source in _TRUSTED_SOURCES  # a disclosure is repeated by law
        results.append(
            self._loops.check(lowered, lang, media_time, quoted=quoted, repeat_ok=repeat_ok)
        )
        reasons = tuple(f"{r.name}: {r.detail}" for r in results if not r.ok)
        return Verdict(
            allowed=not reasons,
            text=text,
            reasons=reasons,
            checks=tuple(results),
            facts=tuple(dict.fromkeys(facts)),
        )

    def commit(self, sentence: Sentence, media_time: float) -> None:
        """Record a sentence as spoken, for loop detection."""
        self._loops.commit(sentence.text, media_time)

    def guard(
        self, sentence: Sentence, product: Product | None, media_time: float
    ) -> Sentence | None:
        """Check, then commit what passes: the ``Guard`` shape the talk pipeline takes."""
        verdict = self.recheck(sentence, product=product, media_time=media_time)
        if not verdict.allowed:
            return None
        checked = verdict.apply(sentence)
        self.commit(checked, media_time)
        return checked

    def recheck(self, sentence: Sentence, *, product: Product | None, media_time: float) -> Verdict:
        """``check`` for a sentence that may have passed before, as it is about to be spoken.

        A model's sentence carries the fact ids an earlier check matched it to; those are not a
        citation, so it is checked again as free text, against the catalog as it is now.
        """
        if sentence.source not in _FIXED_SOURCES and sentence.verdicts:
            sentence = replace(sentence, facts=())
        return self.check(sentence, product=product, media_time=media_time)

    # --- caches --------------------------------------------------------------------------------

    def _live(self, sentence: Sentence, product: Product | None) -> Product | None:
        pid = sentence.product_id or (product.id if product is not None else None)
        live = self.catalog.get(pid) if pid is not None else None
        if live is None and product is not None and product.id == pid:
            return product
        return live

    def _lexicon(self, lang: str) -> re.Pattern[str] | None:
        if lang not in self._lexicons:
            self._lexicons[lang] = load_lexicon(self.lexicon_dir / f"{lang}.txt", lang)
        return self._lexicons[lang]

    def _evidence_for(self, product: Product, lang: str) -> Evidence:
        key = (product.id, lang)
        ev = self._evidence.get(key)
        if ev is None or (ev.product is not product and ev.product != product):
            ev = self._evidence[key] = build_evidence(product, lang)
        return ev


def _numbers(
    text: str,
    live: Product | None,
    ev: Evidence | None,
    seen: set[Decimal],
    facts: list[str],
) -> CheckResult:
    return check_numbers(text, live, ev, prices_seen=seen, facts=facts)
