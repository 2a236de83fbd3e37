"""Written answers: grounded in the catalog, guardrailed like spoken ones, one per group.

``WrittenAnswers.write`` runs in a worker thread over a whole batch of question groups (the
intake's dispatcher hands it everything whose merge hold has ended). Each group gets the same
offline, retrieval-grounded answer a spoken one would (``chat.answers.Answerer``); the claims
in it pass the stream language's guardrails (prices, facts, banned terms) and a refused one is
replaced by the honest "I don't know, see the product page". Groups that get the same answer
through the same source and chat are folded into one chat line naming up to ``max_names``
viewers, which is what keeps a busy chat inside a platform's message limit.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.chat.answers import Answer, Answerer, answer_reasons
from avatarcast.chat.retrieval import Retriever
from avatarcast.script.guardrails import Guardrails, default_lexicon_dir

__all__ = ["Outgoing", "Question", "WrittenAnswers"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """A group's lead question as the writer needs it."""

    key: object  # the intake's group, handed back untouched
    source_id: str
    reply_to: str
    name: str
    text: str
    product_hint: str | None


@dataclass(slots=True, kw_only=True)
class Outgoing:
    """One chat line to send: the groups it answers, its text and the facts it states."""

    source_id: str
    reply_to: str
    text: str
    facts: tuple[str, ...]
    product_id: str | None
    groups: list[object]


class WrittenAnswers:
    """The writer for one stream's chat; thread-safe (one batch at a time)."""

    def __init__(
        self,
        *,
        products: Sequence[Product],
        lang: str,
        guardrails: bool = True,
        max_names: int = 5,
        max_chars: int = 450,
    ) -> None:
        self.lang = lang
        self.max_names = max_names
        self.max_chars = max_chars
        self.catalog = Catalog(products)
        self._retriever = Retriever(catalog=self.catalog, lang=lang)
        self._guardrails = (
            Guardrails(catalog=self.catalog, lang=lang, lexicon_dir=default_lexicon_dir())
            if guardrails
            else None
        )
        self._answerer = Answerer(catalog=self.catalog, lang=lang, retriever=self._retriever)
        self._lock = threading.Lock()
        self.refusals = 0

    def set_products(self, products: Sequence[Product]) -> None:
        with self._lock:
            keep = {p.id for p in products}
            for product_id in self.catalog.ids():
                if product_id not in keep:
                    self.catalog.remove(product_id)
            self.catalog.upsert(products)

    def answer(self, text: str, name: str, product_hint: str | None) -> Answer:
        """One grounded, checked answer addressed to ``name``."""
        found = self._retriever.search(text, current=product_hint)
        answer = self._answerer.template(found, [name] if name else [])
        return self._checked(answer, [name] if name else [])

    def write(self, questions: Sequence[Question]) -> list[Outgoing]:
        with self._lock:
            folded: dict[tuple[str, str, str], tuple[Answer, list[Question]]] = {}
            for q in questions:
                answer = self.answer(q.text, "", q.product_hint)
                key = (q.source_id, q.reply_to, answer.text)
                entry = folded.setdefault(key, (answer, []))
                entry[1].append(q)
            out: list[Outgoing] = []
            for (source_id, reply_to, _), (answer, asked) in folded.items():
                for i in range(0, len(asked), self.max_names):
                    part = asked[i : i + self.max_names]
                    named = self._addressed(answer, [q.name for q in part if q.name])
                    out.append(
                        Outgoing(
                            source_id=source_id,
                            reply_to=reply_to,
                            text=_clip(named.text, self.max_chars),
                            facts=answer.facts,
                            product_id=answer.product_id,
                            groups=[q.key for q in part],
                        )
                    )
            return out

    def _addressed(self, answer: Answer, names: list[str]) -> Answer:
        """Addressed to every name (chat lines name each viewer; speech says "and others")."""
        if len(names) <= 3 or not answer.body:
            return self._answerer.readdress(answer, names)
        tags = " ".join(f"@{n.lstrip('@')}" for n in dict.fromkeys(names))
        body = answer.body[:1].lower() + answer.body[1:]
        return replace(answer, text=f"{tags}, {body}")

    def _checked(self, answer: Answer, names: list[str]) -> Answer:
        if self._guardrails is None or answer.kind == "unknown" or not answer.body:
            return answer
        product = self.catalog.get(answer.product_id) if answer.product_id else None
        sentence = replace(answer.sentence(self.lang), text=answer.body, spoken=None)
        verdict = self._guardrails.check(sentence, product=product, media_time=0.0)
        if not answer_reasons(verdict, product):
            return answer
        self.refusals += 1
        return self._answerer.honest(answer.product_id, names)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
