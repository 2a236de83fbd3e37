"""Finds the catalog fact a viewer's question asks about, and says how sure it is.

Every fact, FAQ entry and selling point of the live catalog is a passage, ranked with BM25
(``rank-bm25``). A question about "it" is about the product on air; naming a product or brand
("does the Lumetra ...", fuzzy-matched with ``rapidfuzz``) moves the question to that product.
Confidence is the IDF-weighted share of what the question asks about that the passage covers;
words that appear nowhere in the catalog weigh the most, so "is it waterproof?" finds nothing
rather than the nearest fact, and the answerer says it does not know.

A question in the other catalog language (English on a Dutch stream) that the stream's
language can't answer is searched in the catalog's text in its own language; the facts are the
same ids, so the host answers in the stream's language. When neither finds the fact, the host
still says it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]
from rapidfuzz import fuzz

from avatarcast.catalog.model import Product, localize
from avatarcast.catalog.store import Catalog
from avatarcast.chat.text import (
    Token,
    canonical,
    detect_lang,
    fold,
    latin_lang_of,
    stem,
    tokenize,
)
from avatarcast.locale import language

__all__ = ["Hit", "PassageKind", "Retrieval", "Retriever"]

PassageKind = Literal["fact", "faq", "sp", "price", "availability", "brand"]

_PRICE_WORDS = {"en": "price cost", "nl": "prijs kost"}
_STOCK_WORDS = {"en": "stock available", "nl": "voorraad beschikbaar"}
_BRAND_WORDS = {"en": "brand", "nl": "merk"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Passage:
    product_id: str
    kind: PassageKind
    key: str  # fact key or list index
    fact_id: str
    text: str
    terms: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """A passage that answers the question: which fact, how sure, and its BM25 score."""

    product_id: str
    kind: PassageKind
    key: str
    fact_id: str
    text: str
    confidence: float
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrieval:
    """What retrieval found for one question. ``product_id`` is the product it is about."""

    question: str
    lang: str
    product_id: str | None
    named: bool  # the question named the product (rather than "it" = the one on air)
    hits: tuple[Hit, ...]
    asks: int  # how many things the question asks about

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    @property
    def confidence(self) -> float:
        return self.hits[0].confidence if self.hits else 0.0


@dataclass(slots=True)
class _Index:
    version: int
    passages: list[_Passage]
    bm25: BM25Okapi | None
    idf: dict[str, float]
    max_idf: float
    names: dict[str, list[tuple[str, float]]]  # product id -> (name token, weight)
    name_terms: frozenset[str]  # every name token, raw and stemmed: they ask about nothing


class Retriever:
    """Ranks the live catalog's passages for a question. Rebuilds when the catalog changes."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        lang: str,
        current_product: Callable[[], str | None] = lambda: None,
        min_confidence: float = 0.5,
        top_k: int = 3,
    ) -> None:
        self.catalog = catalog
        self.lang = lang
        self.current_product = current_product
        self.min_confidence = min_confidence
        self.top_k = top_k
        self._indexes: dict[str, _Index] = {}

    def search(
        self, question: str, *, lang: str | None = None, current: str | None = None
    ) -> Retrieval:
        """The passages of the product the question is about, best first.

        ``current`` is the product "it" means (the one on air when it was asked); without it
        the ``current_product`` callback is asked.
        """
        qlang = detect_lang(question, lang or self.lang)
        text_lang = self._text_lang(lang or self.lang)
        found = self._search(question, qlang, text_lang, current)
        other = latin_lang_of(question) if text_lang in ("en", "nl") and qlang != "zh" else None
        if found.confidence >= self.min_confidence or other in (None, text_lang):
            return found
        assert other is not None
        crossed = self._search(question, other, other, current)
        if crossed.confidence < self.min_confidence:
            return found
        return self._in_lang(crossed, text_lang)

    def _in_lang(self, found: Retrieval, text_lang: str) -> Retrieval:
        """``found`` with each passage's text as the catalog says it in ``text_lang``."""
        texts = {p.fact_id: p.text for p in self._index(text_lang).passages}
        hits = tuple(replace(h, text=texts.get(h.fact_id, h.text)) for h in found.hits)
        return replace(found, hits=hits)

    def _search(self, question: str, qlang: str, text_lang: str, current: str | None) -> Retrieval:
        index = self._index(text_lang)
        product_id, named = self._target(question, qlang, index, current)
        # a word of a product's name asks about nothing, unless it names an attribute and is
        # not in this product's name ("krachtige" in the blender's title must not hide "hoe
        # krachtig is de airfryer?")
        units = [
            u
            for u in tokenize(question, qlang)
            if u.term not in index.name_terms
            or (u.concepts and product_id is not None and not _in_name(u, index, product_id))
        ]
        if product_id is None or not units or index.bm25 is None:
            return Retrieval(
                question=question, lang=qlang, product_id=product_id, named=named, hits=(), asks=0
            )
        query = [a for u in units for a in u.alternatives()]
        scores = index.bm25.get_scores(query)
        weights = [self._weight(u, index) for u in units]
        total = sum(weights)
        hits: list[Hit] = []
        attributes: dict[str, frozenset[int]] = {}  # fact id -> the attribute units it covers
        for p, score in zip(index.passages, scores, strict=True):
            if p.product_id != product_id:
                continue
            covered = sum(w for u, w in zip(units, weights, strict=True) if _covers(p, u))
            conf = covered / total if total else 0.0
            if covered > 0:
                hits.append(_hit(p, conf, float(score)))
                attributes[p.fact_id] = frozenset(
                    i for i, u in enumerate(units) if u.concepts and _covers(p, u)
                )
        hits.sort(key=lambda h: (-round(h.confidence, 2), -h.score, h.fact_id))
        hits = _most_specific(hits, attributes)
        return Retrieval(
            question=question,
            lang=qlang,
            product_id=product_id,
            named=named,
            hits=tuple(hits[: self.top_k]),
            asks=len(units),
        )

    # --- targets -------------------------------------------------------------------------------

    def _target(
        self, question: str, lang: str, index: _Index, current: str | None
    ) -> tuple[str | None, bool]:
        """The product a question names (fuzzy on brand/model/title words), else the one on air."""
        words = [t.term for t in tokenize(question, lang, keep_stopwords=True) if t.term]
        best: tuple[float, str] | None = None
        for pid, names in index.names.items():
            score = 0.0
            for name, weight in names:
                if any(_similar(w, name) for w in words):
                    score += weight
            if score > 0 and (best is None or score > best[0]):
                best = (score, pid)
        if best is not None:
            return best[1], True
        current = current if current is not None else self.current_product()
        if current is not None and current in self.catalog:
            return current, False
        ids = self.catalog.ids()
        return (ids[0] if len(ids) == 1 else None), False

    @staticmethod
    def _weight(unit: Token, index: _Index) -> float:
        if not unit.known:
            return index.max_idf
        known = [index.idf[a] for a in unit.alternatives() if a in index.idf]
        return max(max(known), 0.05) if known else index.max_idf

    # --- the index -----------------------------------------------------------------------------

    def _text_lang(self, lang: str) -> str:
        return language(lang).text if lang in ("en", "nl", "zh") else "en"

    def _index(self, lang: str) -> _Index:
        index = self._indexes.get(lang)
        if index is None or index.version != self.catalog.version:
            index = self._indexes[lang] = _build(
                self.catalog.products(), lang, self.catalog.version
            )
        return index


def _build(products: list[Product], lang: str, version: int) -> _Index:
    passages = [p for product in products for p in _passages(product, lang)]
    docs = [_terms(p.text, lang) for p in passages]
    passages = [
        _Passage(
            product_id=p.product_id,
            kind=p.kind,
            key=p.key,
            fact_id=p.fact_id,
            text=p.text,
            terms=frozenset(d),
        )
        for p, d in zip(passages, docs, strict=True)
    ]
    bm25 = BM25Okapi(docs) if docs and any(docs) else None
    n = max(len(docs), 1)
    df: dict[str, int] = {}
    for d in docs:
        for t in set(d):
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
    max_idf = math.log(1 + (n + 0.5) / 0.5)
    names = {p.id: _name_tokens(p, lang) for p in products}
    raw = {t for toks in names.values() for t, _ in toks}
    name_terms = frozenset(raw | {stem(t, "en") for t in raw} | {stem(t, "nl") for t in raw})
    return _Index(version, passages, bm25, idf, max_idf, names, name_terms)


def _in_name(unit: Token, index: _Index, product_id: str) -> bool:
    """Whether ``unit`` is a word of this product's own name (then it asks nothing)."""
    names = {n for n, _ in index.names.get(product_id, ())}
    stems = names | {stem(n, "en") for n in names} | {stem(n, "nl") for n in names}
    return unit.term in stems


def _most_specific(hits: list[Hit], attributes: dict[str, frozenset[int]]) -> list[Hit]:
    """A fact before a selling point that only says the same thing vaguely.

    "How big is the airfryer basket?" covers "a basket big enough for a family of four" on
    both words, but the capacity fact (5.5 litres) answers the attribute asked ("big"); a
    viewer wants the figure. So when the best passage is a selling point and a product fact
    covers an attribute word it covers, the fact leads, with the selling point's confidence.
    """
    if not hits or hits[0].kind != "sp":
        return hits
    asked = attributes.get(hits[0].fact_id, frozenset())
    facts = [h for h in hits if h.kind == "fact"]
    for h in facts:
        mine = attributes.get(h.fact_id, frozenset())
        others = frozenset().union(*(attributes[x.fact_id] for x in facts if x is not h))
        # the selling point's other words must name a part of the product that has a fact of
        # its own ("basket"), not something asked that only the selling point answers
        # ("big enough for a family?")
        if mine & asked and asked - mine <= others:
            lead = replace(h, confidence=hits[0].confidence)
            return [lead, *(x for x in hits if x is not h)]
    return hits


def _terms(text: str, lang: str) -> list[str]:
    return [a for t in tokenize(text, lang) for a in t.alternatives()]


def _passages(p: Product, lang: str) -> list[_Passage]:
    def mk(kind: PassageKind, key: str, fact_id: str, text: str) -> _Passage:
        return _Passage(
            product_id=p.id, kind=kind, key=key, fact_id=fact_id, text=text, terms=frozenset()
        )

    out = [
        mk("price", "", p.fact_id("sale_price" if p.sale_price else "price"), _PRICE_WORDS[lang]),
        mk("availability", "", p.fact_id("availability"), _STOCK_WORDS[lang]),
        mk("brand", "", p.fact_id("brand"), f"{_BRAND_WORDS[lang]} {p.brand}"),
    ]
    for key, fact in p.facts.items():
        text = f"{fact.label_in(lang)}: {fact.value_in(lang)}"
        out.append(mk("fact", key, p.fact_id("fact", key), text))
    for i, sp in enumerate(p.selling_points):
        out.append(mk("sp", str(i), p.fact_id("sp", i), localize(sp, lang)))
    for i, qa in enumerate(p.faq):
        text = f"{localize(qa.question, lang)} {localize(qa.answer, lang)}"
        out.append(mk("faq", str(i), p.fact_id("faq", i), text))
    return out


def _name_tokens(p: Product, lang: str) -> list[tuple[str, float]]:
    """Words that name a product: brand and model weigh double, category words once."""
    out: dict[str, float] = {}
    brand = fold(p.brand)
    title = canonical(f"{p.title_in(lang)} {p.title_in('en')}")
    for word in title.replace("-", " ").split():
        if word.isdigit() or len(word) < 2:
            continue
        model = any(c.isdigit() for c in word) or word == brand
        out[word] = max(out.get(word, 0.0), 2.0 if model else 1.0)
    out[brand] = 2.0
    return list(out.items())


def _similar(word: str, name: str) -> bool:
    if word == name:
        return True
    if len(name) < 5 or len(word) < 4:
        return False
    return fuzz.ratio(word, name) >= 85


def _covers(p: _Passage, unit: Token) -> bool:
    return any(a in p.terms for a in unit.alternatives())


def _hit(p: _Passage, confidence: float, score: float) -> Hit:
    return Hit(
        product_id=p.product_id,
        kind=p.kind,
        key=p.key,
        fact_id=p.fact_id,
        text=p.text,
        confidence=confidence,
        score=score,
    )
