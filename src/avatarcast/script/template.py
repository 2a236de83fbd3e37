"""The offline writer: sales talk from phrasings and catalog data, no model needed.

Every sentence is a phrasing with catalog values filled in, so everything it claims is in the
catalog, and it names the fact ids it used. Phrasings are picked with a seeded RNG and a memory
of what was said when (in media time): a sentence is never repeated within ``repeat_window``.
When every phrasing of a slot is still fresh in memory, the writer tries another fact
combination and otherwise leaves the sentence out.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from avatarcast.catalog.model import Product, localize
from avatarcast.frames import SegmentKind, Sentence
from avatarcast.locale import format_price, language, spoken_price, spoken_units
from avatarcast.script.base import SegmentRequest
from avatarcast.script.guardrails import normalise
from avatarcast.script.template_phrases import MORE_THAN, PHRASES

__all__ = ["TemplateWriter", "estimate_seconds"]

_PRICE_FIELDS = ("price", "sale", "regular", "prior")


def estimate_seconds(sentence: Sentence) -> float:
    """A rough speaking time (65 ms a character plus the pause): enough to place sentences."""
    return len(sentence.speech_text) * 0.065 + sentence.pause_after_ms / 1000


@dataclass(frozen=True, slots=True)
class _Fill:
    """Values for one phrasing, the fact ids they come from, and spoken forms of prices."""

    values: dict[str, str]
    facts: tuple[str, ...]
    spoken: dict[str, str] = field(default_factory=dict)


class _Memory:
    """Normalised sentences and the media time each was last said."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._said: dict[str, float] = {}

    def fresh(self, key: str, now: float) -> bool:
        last = self._said.get(key)
        return last is None or now - last >= self.window

    def remember(self, key: str, now: float) -> None:
        self._said[key] = now
        if len(self._said) > 4096:
            self._said = {k: t for k, t in self._said.items() if now - t < self.window}


class TemplateWriter:
    """Writes intro, facts, offer, call to action and transition from phrasings.

    ``low_stock``: the stock is mentioned only at or below it (and then exactly).
    ``repeat_window``: seconds of media time within which no sentence is said twice.
    """

    name = "template"

    def __init__(
        self, *, seed: int = 0, repeat_window: float = 1800.0, low_stock: int = 10
    ) -> None:
        self._rng = random.Random(seed)
        self._memory = _Memory(repeat_window)
        self._low_stock = low_stock
        self._passes: dict[tuple[str, SegmentKind], int] = {}
        self._fact_cursor: dict[str, int] = {}
        self._recent: dict[str, deque[str]] = {}

    async def write(self, request: SegmentRequest) -> AsyncIterator[Sentence]:
        for sentence in self.compose(request):
            yield sentence

    def compose(self, request: SegmentRequest) -> list[Sentence]:
        """The sentences for one segment, committed to memory (what ``write`` yields)."""
        text_lang = language(request.lang).text
        key = (request.product.id, request.kind)
        n = self._passes.get(key, 0)
        self._passes[key] = n + 1
        seg = _Segment(self, request, text_lang, n)
        return seg.run()

    # --- used by _Segment ----------------------------------------------------------------------

    def _next_facts(self, product: Product) -> list[str]:
        keys = list(product.facts)
        if not keys:
            return []
        count = min(len(keys), self._rng.choice((2, 3)))
        start = self._fact_cursor.get(product.id, 0) % len(keys)
        self._fact_cursor[product.id] = start + count
        return [keys[(start + i) % len(keys)] for i in range(count)]


class _Segment:
    """Writes one segment: picks phrasings, renders them and keeps the time running."""

    def __init__(self, writer: TemplateWriter, request: SegmentRequest, lang: str, n: int):
        self.w = writer
        self.r = request
        self.p = request.product
        self.lang = lang
        self.n = n
        self.now = request.media_time
        self.out: list[Sentence] = []

    def run(self) -> list[Sentence]:
        kind = self.r.kind
        if kind == "intro":
            self._intro()
        elif kind == "facts":
            self._facts()
        elif kind == "offer":
            self._offer()
        elif kind == "cta":
            self._cta()
        else:
            self._transition()
        return self.out

    # --- segments ------------------------------------------------------------------------------

    def _intro(self) -> None:
        self.say("intro.hello", [self._base()])
        points = self.p.selling_points
        if points:
            order = _rotate(len(points), self.n)
            self.say("intro.point", [self._point(i) for i in order])

    def _facts(self) -> None:
        keys = self.w._next_facts(self.p)
        if not keys and self.p.selling_points:
            order = _rotate(len(self.p.selling_points), self.n + 1)
            self.say("intro.point", [self._point(i) for i in order])
        others = [k for k in self.p.facts if k not in keys]
        if len(keys) >= 2 and (len(keys) == 3 or self.w._rng.random() < 0.5):
            pairs = [(keys[0], keys[1]), (keys[1], keys[0])]
            pairs += [(a, b) for a in keys[:2] for b in others]
            self.say("facts.two", [self._fact_pair(a, b) for a, b in pairs])
            keys = keys[2:]
        for k in keys:
            self.say("facts.one", [self._fact(x) for x in [k, *others]])
        if self.p.faq and self.n % 2 == 1:
            order = _rotate(len(self.p.faq), self.n // 2)
            self.say("facts.faq", [self._faq(i) for i in order])

    def _offer(self) -> None:
        p = self.p
        if p.sale_price is None or p.prior_lowest_price is None:
            # No reduction is announced without the prior 30-day low it must be measured from.
            self.say("offer.price", [self._money("price", p.current_price, "current")])
            return
        sale = self._money("sale", p.sale_price, "sale_price")
        regular = self._money("regular", p.price, "price")
        self.say("offer.sale", [_merge(self._base(), sale, regular)])
        self.say("offer.prior", [self._money("prior", p.prior_lowest_price, "prior_lowest_price")])
        pct = _percent_off(p.prior_lowest_price, p.sale_price)
        if pct is not None:
            fill = self._money("prior", p.prior_lowest_price, "prior_lowest_price")
            sale_fill = self._money("sale", p.sale_price, "sale_price")
            shown = pct_text(pct, self.lang)
            said = shown.replace("%", " procent" if self.lang == "nl" else " percent")
            self.say(
                "offer.pct", [_merge(fill, sale_fill, _Fill({"pct": shown}, (), {"pct": said}))]
            )

    def _cta(self) -> None:
        p = self.p
        slot = "cta.preorder" if p.availability == "preorder" else "cta.order"
        if p.availability == "preorder":
            base = self._base()
            self.say(slot, [_merge(base, _Fill({}, (p.fact_id("availability"),)))])
        else:
            self.say(slot, [self._base()])
        stock = p.stock
        if p.availability == "in_stock" and stock is not None and 0 < stock <= self.w._low_stock:
            stock_fill = _Fill({"stock": str(stock)}, (p.fact_id("stock"),))
            self.say("cta.stock", [_merge(self._base(), stock_fill)])

    def _transition(self) -> None:
        self.say("transition.out", [self._base()])
        nxt = self.r.next_product
        if nxt is not None:
            fill = _Fill(
                {"next_title": nxt.title_in(self.lang), "next_brand": nxt.brand},
                (nxt.fact_id("title"), nxt.fact_id("brand")),
            )
            self.say("transition.next", [fill], product=nxt)

    # --- fills ---------------------------------------------------------------------------------

    def _base(self) -> _Fill:
        p = self.p
        return _Fill(
            {"title": p.title_in(self.lang), "brand": p.brand},
            (p.fact_id("title"), p.fact_id("brand")),
        )

    def _point(self, i: int) -> _Fill:
        text = localize(self.p.selling_points[i], self.lang).strip().rstrip(".!")
        return _Fill({"point": _lower(text), "Point": _upper(text)}, (self.p.fact_id("sp", i),))

    def _fact(self, key: str, suffix: str = "") -> _Fill:
        fact = self.p.facts[key]
        label, value = fact.label_in(self.lang).strip(), fact.value_in(self.lang).strip()
        values = {
            "label" + suffix: _lower(label),
            "Label" + suffix: _upper(label),
            "value" + suffix: value,
            "Value" + suffix: _upper(value),
        }
        return _merge(self._base(), _Fill(values, (self.p.fact_id("fact", key),)))

    def _fact_pair(self, a: str, b: str) -> _Fill:
        return _merge(self._fact(a), self._fact(b, "2"))

    def _faq(self, i: int) -> _Fill:
        entry = self.p.faq[i]
        values = {
            "question": localize(entry.question, self.lang).strip(),
            "answer": localize(entry.answer, self.lang).strip(),
        }
        return _Fill(values, (self.p.fact_id("faq", i),))

    def _money(self, name: str, amount: Decimal, fact: str) -> _Fill:
        p = self.p
        if fact == "current":
            fact = "sale_price" if p.sale_price is not None else "price"
        return _merge(
            self._base(),
            _Fill(
                {name: format_price(amount, p.currency, self.lang)},
                (p.fact_id(fact),),
                {name: spoken_price(amount, p.currency, self.lang)},
            ),
        )

    # --- choosing and saying -------------------------------------------------------------------

    def say(self, slot: str, fills: Sequence[_Fill], *, product: Product | None = None) -> None:
        """Say the first fresh rendering: fills in order, phrasings in a seeded random order."""
        phrasings = list(PHRASES.get(self.lang, PHRASES["en"])[slot])
        recent = self.w._recent.setdefault(f"{self.lang}:{slot}", deque(maxlen=3))
        for fill in fills:
            self.w._rng.shuffle(phrasings)
            phrasings.sort(key=lambda ph: ph in recent)  # stable: recent ones go last
            for phrasing in phrasings:
                sentence = self._render(phrasing, fill, product or self.p)
                key = normalise(sentence.text)
                if self.w._memory.fresh(key, self.now):
                    self.w._memory.remember(key, self.now)
                    recent.append(phrasing)
                    self.out.append(sentence)
                    self.now += estimate_seconds(sentence)
                    return

    def _render(self, phrasing: str, fill: _Fill, product: Product) -> Sentence:
        text = _upper(phrasing.format_map(fill.values))
        spoken_values = {**fill.values, **fill.spoken}
        spoken = spoken_units(_upper(phrasing.format_map(spoken_values)), self.lang)
        used = tuple(f for f in fill.facts if _uses(phrasing, f, product))
        return Sentence(
            text=text,
            lang=self.lang,
            source="template",
            product_id=product.id,
            segment=self.r.kind,
            facts=used,
            spoken=spoken if spoken != text else None,
        )


# --- helpers -----------------------------------------------------------------------------------


def _merge(*fills: _Fill) -> _Fill:
    values: dict[str, str] = {}
    spoken: dict[str, str] = {}
    facts: list[str] = []
    for f in fills:
        values.update(f.values)
        spoken.update(f.spoken)
        facts.extend(f.facts)
    return _Fill(values, tuple(dict.fromkeys(facts)), spoken)


_PLACEHOLDER_FACTS = {
    "title": ("title",),
    "brand": ("brand",),
    "next_title": ("title",),
    "next_brand": ("brand",),
}


def _uses(phrasing: str, fact_id: str, product: Product) -> bool:
    """Whether a phrasing says the fact: title and brand ids only when it names them."""
    kind = fact_id.removeprefix(product.id + ":").split(":", 1)[0]
    if kind == "title":
        return "{title}" in phrasing or "{next_title}" in phrasing
    if kind == "brand":
        return "{brand}" in phrasing or "{next_brand}" in phrasing
    if kind in ("sale_price", "price", "prior_lowest_price"):
        names = {
            "sale_price": ("{sale}", "{price}", "{pct}"),
            "price": ("{regular}", "{price}"),
            "prior_lowest_price": ("{prior}", "{pct}"),
        }[kind]
        return any(n in phrasing for n in names)
    return True


def _rotate(count: int, n: int) -> list[int]:
    """Indices ``0..count-1`` starting at ``n`` (mod count): a different first choice each pass."""
    return [(n + i) % count for i in range(count)]


def _percent_off(reference: Decimal, sale: Decimal) -> Decimal | None:
    """The exact percentage below ``reference``, or None if there is no reduction."""
    if reference <= sale:
        return None
    return (reference - sale) * 100 / reference


def pct_text(exact: Decimal, lang: str) -> str:
    """A percentage as said: whole percent, "more than" when the exact figure is higher."""
    whole = exact.quantize(Decimal(1), rounding=ROUND_DOWN)
    if whole == exact:
        return f"{whole}%"
    return MORE_THAN.get(lang, MORE_THAN["en"]).format(pct=f"{whole}%")


def _lower(text: str) -> str:
    """Lower the first letter unless the word looks like a name or an acronym ("USB-C")."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text
