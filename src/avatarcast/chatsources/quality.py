"""The answer-quality measure: does each answer state a fact a good answer states?

A set is JSON: ``{"catalog": PATH, "items": [{"lang", "question", "facts": [ids]}]}``. Each
question is answered as a written chat answer is (``WrittenAnswers.answer``); an answer is
``right`` when it states one of the expected fact ids, ``wrong`` when it states a fact that is
not one of them, and ``unknown`` when it honestly says it does not know.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avatarcast.catalog.model import Product
from avatarcast.chatsources.written import WrittenAnswers

__all__ = ["Graded", "grade_set"]


@dataclass(frozen=True, slots=True)
class Graded:
    lang: str
    question: str
    expected: tuple[str, ...]
    stated: tuple[str, ...]
    answer: str

    @property
    def verdict(self) -> str:
        if not self.stated or all(f.endswith(":title") for f in self.stated):
            return "unknown"
        return "right" if set(self.stated) & set(self.expected) else "wrong"


def grade_set(path: Path, products: Sequence[Product] | None = None) -> list[Graded]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if products is None:
        raw = json.loads((path.parents[2] / data["catalog"]).read_text(encoding="utf-8"))
        items = raw["products"] if isinstance(raw, dict) else raw
        products = [Product.model_validate(p) for p in items]
    writers = {lang: WrittenAnswers(products=products, lang=lang) for lang in ("en", "nl")}
    out = []
    for item in data["items"]:
        answer = writers[item["lang"]].answer(item["question"], "", None)
        out.append(
            Graded(item["lang"], item["question"], tuple(item["facts"]), answer.facts, answer.text)
        )
    return out
