"""The rundown and the template writer over the demo catalog, in English and Dutch."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from avatarcast.catalog.loaders import load_catalog
from avatarcast.catalog.model import Product, localize
from avatarcast.catalog.store import Catalog
from avatarcast.frames import Sentence
from avatarcast.locale import format_price
from avatarcast.script.base import SegmentRequest
from avatarcast.script.guardrails import normalise
from avatarcast.script.rundown import Rundown
from avatarcast.script.template import TemplateWriter

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo-catalog.json"
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
HALF_HOUR = 1800.0


def _catalog() -> Catalog:
    return Catalog(load_catalog(DEMO))


def _speaking_time(s: Sentence) -> float:
    return len(s.text) * 0.065 + s.pause_after_ms / 1000


async def _run(
    catalog: Catalog, writer: TemplateWriter, lang: str, seconds: float
) -> list[tuple[float, Sentence]]:
    """A simulated programme: media time advances by an estimated speaking time per sentence."""
    rundown = Rundown(catalog, lang=lang)
    out: list[tuple[float, Sentence]] = []
    t = 0.0
    while t < seconds:
        request = rundown(t)
        assert request is not None
        async for s in writer.write(request):
            out.append((t, s))
            t += _speaking_time(s)
    return out


def _catalog_numbers(p: Product, lang: str) -> set[str]:
    texts = [p.title_in(lang), p.brand, str(p.stock)]
    for fact in p.facts.values():
        texts += [fact.label_in(lang), fact.value_in(lang)]
    texts += [localize(sp, lang) for sp in p.selling_points]
    texts += [localize(q.question, lang) + " " + localize(q.answer, lang) for q in p.faq]
    for amount in (p.price, p.sale_price, p.prior_lowest_price):
        if amount is not None:
            texts.append(format_price(amount, p.currency, lang))
    if p.sale_price is not None and p.prior_lowest_price is not None:
        off = (p.prior_lowest_price - p.sale_price) * 100 / p.prior_lowest_price
        texts.append(str(off.quantize(Decimal(1), rounding=ROUND_DOWN)))
    return {m.group(0) for t in texts for m in NUMBER.finditer(t)}


@pytest.mark.parametrize("lang", ["en", "nl"])
async def test_two_hours_without_a_repeat_and_only_catalog_facts(lang: str) -> None:
    catalog = _catalog()
    talk = await _run(catalog, TemplateWriter(seed=7), lang, 2 * 3600)
    assert len(talk) > 1000
    last: dict[str, float] = {}
    for t, s in talk:
        key = normalise(s.text)
        assert key not in last or t - last[key] >= HALF_HOUR, (s.text, t - last[key])
        last[key] = t
        product = catalog.get(s.product_id or "")
        assert product is not None
        assert s.source == "template" and s.lang == lang
        assert s.facts, s.text
        assert set(s.facts) <= set(product.fact_ids()), (s.text, s.facts)
        allowed = _catalog_numbers(product, lang)
        for number in NUMBER.findall(s.text):
            assert number in allowed, (s.text, number)
    segments = {s.segment for _, s in talk}
    assert segments == {"intro", "facts", "offer", "cta", "transition"}
    # every fact of every product gets said within the two hours
    said = {f for _, s in talk for f in s.facts}
    for p in catalog.products():
        assert {p.fact_id("fact", k) for k in p.facts} <= said


async def test_offer_uses_exact_locale_prices_and_spoken_forms() -> None:
    catalog = _catalog()
    talk = await _run(catalog, TemplateWriter(seed=1), "nl", 600)
    offers = [s for _, s in talk if s.segment == "offer" and s.product_id == "kovana-af550"]
    sale = next(s for s in offers if "kovana-af550:sale_price" in s.facts)
    assert "€ 89,99" in sale.text and "€ 119,99" in sale.text
    assert sale.spoken is not None and "89 euro 99" in sale.spoken and "€" not in sale.spoken
    prior = next(s for s in offers if s.facts == ("kovana-af550:prior_lowest_price",))
    assert "€ 99,99" in prior.text and "dertig dagen" in prior.text
    pct = next(s for s in offers if "%" in s.text)
    assert "meer dan 10%" in pct.text  # (99.99 - 89.99) / 99.99 = 10.001 %, never rounded up
    plain = [s for _, s in talk if s.segment == "offer" and s.product_id == "sonavo-hush700"]
    assert plain
    for s in plain:  # no sale: one sentence per offer, the regular price
        assert "sonavo-hush700:price" in s.facts
        assert "€ 199,00" in s.text and "%" not in s.text


async def test_stock_is_mentioned_only_when_low_and_exactly() -> None:
    catalog = _catalog()
    talk = await _run(catalog, TemplateWriter(seed=3), "en", 1200)
    stock_lines = [s for _, s in talk if any(f.endswith(":stock") for f in s.facts)]
    assert stock_lines
    assert {s.product_id for s in stock_lines} == {"lumetra-uw34", "tidyra-s9"}  # 7 and 5 left
    for s in stock_lines:
        p = catalog.get(s.product_id or "")
        assert p is not None
        in_title = NUMBER.findall(p.title_in("en"))
        assert [n for n in NUMBER.findall(s.text) if n not in in_title] == [str(p.stock)]


async def test_same_seed_same_talk_other_seed_other_talk() -> None:
    async def texts(seed: int) -> list[str]:
        return [s.text for _, s in await _run(_catalog(), TemplateWriter(seed=seed), "en", 900)]

    first = await texts(11)
    assert first == await texts(11)
    assert first != await texts(12)


async def test_price_change_is_in_the_next_offer() -> None:
    catalog = _catalog()
    rundown = Rundown(catalog, lang="en")
    writer = TemplateWriter(seed=5)

    async def next_offer(product_id: str, t: float) -> list[Sentence]:
        for _ in range(100):
            request = rundown(t)
            assert request is not None
            said = [s async for s in writer.write(request)]
            if request.kind == "offer" and request.product.id == product_id:
                return said
        raise AssertionError("no offer")

    before = await next_offer("lumetra-uw34", 0.0)
    assert any("€449.00" in s.text for s in before)
    monitor = catalog.get("lumetra-uw34")
    assert monitor is not None
    catalog.upsert([monitor.model_copy(update={"price": Decimal("429.00")})])
    after = await next_offer("lumetra-uw34", 400.0)
    assert any("€429.00" in s.text for s in after)
    assert not any("449" in s.text for s in after)


async def test_sale_without_prior_low_announces_no_reduction() -> None:
    p = Product(id="k", title="Kettle", brand="Brewly", price=Decimal("50"), sale_price=Decimal(40))
    writer = TemplateWriter(seed=0)
    request = SegmentRequest(product=p, kind="offer", lang="en", media_time=0)
    said = [s async for s in writer.write(request)]
    assert len(said) == 1
    assert "k:sale_price" in said[0].facts and "k:price" not in said[0].facts
    assert "€40.00" in said[0].text and "50" not in said[0].text


async def test_slot_exhaustion_skips_instead_of_repeating() -> None:
    p = Product(id="k", title="Kettle", brand="Brewly", price=Decimal("50"))
    writer = TemplateWriter(seed=0)
    said: list[str] = []
    for i in range(20):
        request = SegmentRequest(product=p, kind="offer", lang="en", media_time=float(i))
        said += [s.text async for s in writer.write(request)]
    assert len(said) == len(set(said)) == 12  # every phrasing once, then silence


# --- rundown ----------------------------------------------------------------------------------


def _kinds(rundown: Rundown, n: int) -> Iterator[tuple[str, str]]:
    for _ in range(n):
        request = rundown(0.0)
        assert request is not None
        yield request.product.id, request.kind


def test_rundown_cycles_in_catalog_order() -> None:
    catalog = _catalog()
    rundown = Rundown(catalog, lang="en")
    steps = list(_kinds(rundown, 5 * len(catalog) + 1))
    assert [k for _, k in steps[:5]] == ["intro", "facts", "offer", "cta", "transition"]
    assert [pid for pid, _ in steps[::5]] == [*catalog.ids(), catalog.ids()[0]]
    assert rundown.current_product_id == catalog.ids()[0]
    assert rundown.cycles == 1


def test_rundown_skips_removed_products_and_names_the_next_one() -> None:
    catalog = _catalog()
    ids = catalog.ids()
    rundown = Rundown(catalog, lang="en")
    first = rundown(0.0)
    assert first is not None and first.next_product is not None
    assert first.next_product.id == ids[1]
    catalog.remove(ids[1])
    rest = list(_kinds(rundown, 4))
    assert rest[-1] == (ids[0], "transition")
    assert rundown(0.0) is not None and rundown.current_product_id == ids[2]
    catalog.remove(ids[2])  # removed while on air: the next call moves on
    request = rundown(0.0)
    assert request is not None and (request.product.id, request.kind) == (ids[3], "intro")


def test_rundown_on_an_empty_catalog() -> None:
    assert Rundown(Catalog(), lang="en")(0.0) is None
