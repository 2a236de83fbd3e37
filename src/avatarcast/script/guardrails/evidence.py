"""What a product lets the host say: passages of catalog text, each with its fact id.

Prices, stock and availability get passages too, so a sentence that cites those fact ids
(template sentences do) is checked against something. Numbers that may be said as sizes come
only from facts, selling points and FAQ answers; prices are matched by the numbers check itself.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from avatarcast.catalog.model import Product
from avatarcast.script.guardrails.numbers import Num, parse_numbers

__all__ = [
    "NEGATIONS",
    "Evidence",
    "Passage",
    "build_evidence",
    "is_negation",
    "negated",
    "stem",
    "stems",
    "tokens",
]

NEGATIONS = frozenset(
    "not no never without n't don't doesn't isn't won't cannot can't free "
    "niet geen nooit zonder vrij".split()
)
_ZH_NEGATION = re.compile(r"[不没无非别免]")
_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")

#: How the synthetic passages read, per language: what the catalog field means, in words.
_FIELDS = {
    "en": {
        "price": "price",
        "sale_price": "sale price now",
        "prior_lowest_price": "lowest price of the thirty days before the offer",
        "stock": "stock in stock",
        "in_stock": "in stock available",
        "preorder": "pre-order preorder",
        "backorder": "backorder",
        "out_of_stock": "out of stock",
    },
    "nl": {
        "price": "prijs",
        "sale_price": "actieprijs nu",
        "prior_lowest_price": "laagste prijs van de dertig dagen voor de actie",
        "stock": "voorraad op voorraad",
        "in_stock": "op voorraad leverbaar",
        "preorder": "pre-order voorbestellen",
        "backorder": "nabestelling",
        "out_of_stock": "niet op voorraad",
    },
    "zh": {
        "price": "价格",
        "sale_price": "现价",
        "prior_lowest_price": "此前三十天最低价",
        "stock": "库存",
        "in_stock": "有货 现货 库存",
        "preorder": "预售 预定",
        "backorder": "补货",
        "out_of_stock": "缺货",
    },
}


def tokens(text: str) -> list[str]:
    """Latin words (with an apostrophe part: "it's"), no digits."""
    return _TOKEN.findall(text)


def stem(word: str, lang: str) -> str:
    """A light suffix-stripping stemmer: "makes" matches "make", "bakken" matches "bak"."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if lang == "nl":
        for suffix in ("tjes", "jes", "tje", "je", "en", "e", "s", "t"):
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


def stems(text: str, lang: str) -> frozenset[str]:
    latin = "nl" if lang == "nl" else "en"
    return frozenset(stem(t, latin) for t in tokens(text))


def is_negation(token: str) -> bool:
    t = token.lower().replace("’", "'")
    return t in NEGATIONS or t.endswith("n't")


def negated(text: str, *, ignore: frozenset[str] = frozenset()) -> bool:
    """Whether ``text`` negates; words in ``ignore`` (fixed phrasing) do not count."""
    words = (t.lower().replace("’", "'") for t in tokens(text))
    if any(is_negation(t) and t not in ignore for t in words):
        return True
    return bool(_ZH_NEGATION.search(text))


@dataclass(frozen=True, slots=True)
class Passage:
    fact_id: str
    text: str
    stems: frozenset[str]
    negated: bool


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything a product lets the host say, in one language, prepared for fast matching.

    ``core``: title and brand stems (naming the product claims nothing). ``numbers``: what may
    be said as a size or count. ``title``: the case-folded title, whose numbers are a name.
    """

    product: Product
    passages: tuple[Passage, ...]
    core: frozenset[str]
    text: str
    title: str
    numbers: tuple[Num, ...]
    fact_values: tuple[str, ...]
    by_id: dict[str, Passage]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def build_evidence(product: Product, lang: str) -> Evidence:
    p = product
    words = _FIELDS.get(lang, _FIELDS["en"])
    money = [("price", p.price), ("sale_price", p.sale_price)]
    money.append(("prior_lowest_price", p.prior_lowest_price))
    raw = [(p.fact_id("title"), p.title_in(lang)), (p.fact_id("brand"), p.brand)]
    raw += [(p.fact_id(k), f"{words[k]} {v} {p.currency}") for k, v in money if v is not None]
    raw.append((p.fact_id("availability"), words[p.availability]))
    if p.stock is not None:
        raw.append((p.fact_id("stock"), f"{words['stock']} {p.stock}"))
    quoted: list[str] = []
    values: list[str] = []
    for key, fact in p.facts.items():
        values.append(_fold(fact.value_in(lang)))
        quoted.append(f"{fact.label_in(lang)} {fact.value_in(lang)}")
        raw.append((p.fact_id("fact", key), quoted[-1]))
    for i, sp in enumerate(p.selling_points):
        quoted.append(sp if isinstance(sp, str) else sp.get(lang, ""))
        raw.append((p.fact_id("sp", i), quoted[-1]))
    for i, qa in enumerate(p.faq):
        q = qa.question if isinstance(qa.question, str) else qa.question.get(lang, "")
        a = qa.answer if isinstance(qa.answer, str) else qa.answer.get(lang, "")
        quoted.append(f"{q} {a}")
        raw.append((p.fact_id("faq", i), quoted[-1]))
    folded = [(fid, _fold(t)) for fid, t in raw]
    passages = tuple(Passage(fid, t, stems(t, lang), negated(t)) for fid, t in folded if t)
    return Evidence(
        product=p,
        passages=passages,
        core=stems(folded[0][1], lang) | stems(folded[1][1], lang),
        text="\n".join(t for _, t in folded),
        title=folded[0][1],
        numbers=tuple(n for t in quoted for n in parse_numbers(_fold(t))),
        fact_values=tuple(v for v in values if len(v) >= 3),
        by_id={ps.fact_id: ps for ps in passages},
    )
