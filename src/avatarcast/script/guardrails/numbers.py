"""The numbers check: every price, percentage, size and count must be the live catalog's.

A written number is read every way it can mean ("1,299" is 1299 in English, 1.299 in Dutch)
and passes if any reading matches. Numbers that are part of the product's name ("Hush 700")
name the product and are not checked as quantities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import TYPE_CHECKING

from avatarcast.catalog.model import Product
from avatarcast.script.guardrails.verdict import CheckResult

if TYPE_CHECKING:
    from avatarcast.script.guardrails.evidence import Evidence

__all__ = ["NUM_WITH_UNIT", "Num", "check_numbers", "mask_title", "parse_numbers"]

_NUM = re.compile(
    r"(?P<pre>[€$£¥]|\b(?:eur|usd|rmb)\b|百分之)?\s?"
    r"(?<![A-Za-z0-9_.,])(?P<num>\d+(?:[.,]\d+)*)(?P<dash>,-|,–)?"
    r"(?:\s?(?P<post>%|％|per cent|percent|procent|euros?|eur\b|€|元|块|dollars?|折|[^\W\d_]+))?",
    re.IGNORECASE,
)
_MONEY_WORDS = frozenset({"€", "$", "£", "¥", "eur", "euro", "euros", "usd", "rmb", "元", "块"})
_MONEY_WORDS |= {"dollar", "dollars"}
_PERCENT_WORDS = frozenset({"%", "％", "per cent", "percent", "procent", "百分之"})
_UNITS = {
    "l": "l liter litre liters litres ltr 升",
    "ml": "ml milliliter millilitre milliliters millilitres 毫升",
    "w": "w watt watts 瓦 瓦特",
    "kw": "kw kilowatt",
    "cm": "cm centimeter centimetre centimeters centimetres 厘米 公分",
    "mm": "mm millimeter millimetre millimeters millimetres 毫米",
    "m": "m meter metre meters metres 米",
    "kg": "kg kilo kilos kilogram kilograms 公斤 千克",
    "g": "g gram grams 克",
    "in": "inch inches 英寸 寸",
    "min": "min minute minutes minuten minuut 分钟",
    "h": "h hour hours uur 小时",
    "deg": "°c degrees graden 度",
    "v": "v volt volts 伏",
    "mah": "mah",
    "gb": "gb",
    "year": "year years jaar 年",
}
_UNIT_OF = {alias: unit for unit, aliases in _UNITS.items() for alias in aliases.split()}
_SUFFIXES = sorted([*_UNIT_OF, *_MONEY_WORDS, *_PERCENT_WORDS, "折"], key=len, reverse=True)
NUM_WITH_UNIT = re.compile(
    r"(?:[€$£¥]\s?)?\d+(?:[.,]\d+)*(?:,-)?(?:\s?(?:"
    + "|".join(map(re.escape, _SUFFIXES))
    + r")(?![a-z]))?",
    re.IGNORECASE,
)
REFERENCE_CUE = re.compile(
    r"\b(?:was|were|instead of|down from|reduced from|regular|normally|usually|original|lowest|"
    r"van|voorheen|normaal|adviesprijs|laagste|eerder)\b|原价|之前|原来|最低",
    re.IGNORECASE,
)
#: A word followed by a number inside a title: "hush 700", "pico 300".
_NAMED_NUMBER = re.compile(r"[^\W\d_]+[\s-]\d+(?:[.,]\d+)?(?![\d])")


@dataclass(frozen=True, slots=True)
class Num:
    raw: str
    values: frozenset[Decimal]
    kind: str  # "money", "percent", "discount" (zh 折: percent off) or "plain"
    unit: str | None


def _values(raw: str, dash: bool) -> frozenset[Decimal]:
    """Every value a written number can mean: "1,299" is 1299 in English and 1.299 in Dutch."""
    seps = [c for c in raw if c in ".,"]
    try:
        if not seps:
            out = {Decimal(raw)}
        elif len(set(seps)) == 2:
            dec = seps[-1]
            whole, frac = raw.rsplit(dec, 1)
            out = {Decimal(re.sub(r"[.,]", "", whole) + "." + frac)}
        elif len(seps) > 1:
            out = {Decimal(re.sub(r"[.,]", "", raw))}
        else:
            whole, frac = re.split(r"[.,]", raw)
            out = {Decimal(f"{whole}.{frac}")}
            if len(frac) == 3:
                out.add(Decimal(whole + frac))
    except InvalidOperation:
        return frozenset()
    if dash:
        out = {v for v in out if v == v.to_integral_value()}
    return frozenset(v.normalize() for v in out)


def parse_numbers(text: str) -> list[Num]:
    """Numbers in ``text`` with their kind and canonical unit (``l``, ``w``, ``cm`` ...)."""
    found = []
    for m in _NUM.finditer(text):
        pre = (m["pre"] or "").lower()
        post = (m["post"] or "").lower()
        unit = None
        if pre in _MONEY_WORDS or post in _MONEY_WORDS:
            kind = "money"
        elif pre in _PERCENT_WORDS or post in _PERCENT_WORDS:
            kind = "percent"
        elif post == "折":
            kind = "discount"
        else:
            kind = "plain"
            unit = _UNIT_OF.get(post)
            if unit is None and post and not post.isascii():  # Han: 5升的 -> 升
                unit = _UNIT_OF.get(post[:2]) or _UNIT_OF.get(post[:1])
        shown = (m["pre"] or "") + m["num"] + (m["post"] or "" if kind != "plain" or unit else "")
        found.append(Num(shown, _values(m["num"], bool(m["dash"])), kind, unit))
    return found


def mask_title(text: str, title: str) -> str:
    """``text`` with the product's name, and the numbered parts of it, blanked out.

    "Hush 700" is a name, not a quantity: the 700 is checked as part of the title, only where
    it follows the same word as in the title.
    """
    if not title:
        return text
    text = text.replace(title, " ")
    for named in _NAMED_NUMBER.findall(title):
        text = re.sub(rf"(?<!\w){re.escape(named)}(?![\d.,]?\d)", " ", text)
    return text


def _zhe_to_percent(values: frozenset[Decimal]) -> frozenset[Decimal]:
    """Chinese 8折 is 80% of the price, i.e. 20% off; 85折 is 15% off."""
    return frozenset((100 - v * 10 if v < 10 else 100 - v).normalize() for v in values)


def _same_number(said: Num, listed: Num) -> bool:
    if not said.values & listed.values:
        return False
    return said.unit is None or listed.unit is None or said.unit == listed.unit


def _discount_ok(said: Decimal, product: Product) -> bool:
    """A percentage off is allowed only if it follows exactly from the catalog prices.

    The reference is the lowest price of the last 30 days when the catalog has it (the EU
    Omnibus rule), else the regular price; the spoken figure may be truncated, never rounded up.
    """
    if product.sale_price is None:
        return False
    base = product.prior_lowest_price or product.price
    if base <= product.sale_price:
        return False
    exact = (base - product.sale_price) * 100 / base
    places = max(0, -int(said.as_tuple().exponent))
    return said == exact or said == exact.quantize(Decimal(1).scaleb(-places), ROUND_DOWN)


def check_numbers(
    text: str,
    live: Product | None,
    ev: Evidence | None,
    *,
    prices_seen: set[Decimal],
    facts: list[str],
) -> CheckResult:
    """``text`` is case-folded; ``facts`` collects the fact ids of the numbers matched."""
    nums = parse_numbers(mask_title(text, ev.title) if ev is not None else text)
    if not nums:
        return CheckResult("numbers", True)
    if live is None or ev is None:
        return CheckResult("numbers", False, f"{nums[0].raw} said without a product")
    current = live.current_price.normalize()
    refs = {v.normalize() for v in (live.price, live.prior_lowest_price) if v is not None}
    has_cue = bool(REFERENCE_CUE.search(text))
    listed = {v for n in ev.numbers for v in n.values}
    listed_pct = {v for n in ev.numbers if n.kind == "percent" for v in n.values}
    stale = prices_seen - {current} - refs
    problems = []
    for n in nums:
        if n.kind in ("percent", "discount"):
            said = n.values if n.kind == "percent" else _zhe_to_percent(n.values)
            if not any(_discount_ok(v, live) for v in said) and not said & listed_pct:
                problems.append(f"{n.raw} is not the catalog discount")
            continue
        if current in n.values and n.unit is None:
            facts.append(live.fact_id("sale_price" if live.sale_price else "price"))
        elif n.values & refs and (has_cue or n.kind != "money") and n.unit is None:
            prior = live.prior_lowest_price
            ref = "prior_lowest_price" if prior is not None and prior in n.values else "price"
            facts.append(live.fact_id(ref))
        elif n.kind != "money" and any(_same_number(n, e) for e in ev.numbers):
            continue
        elif n.kind == "money" and n.values & listed:
            continue
        elif live.stock is not None and n.kind == "plain" and Decimal(live.stock) in n.values:
            facts.append(live.fact_id("stock"))
        elif n.values & stale:
            problems.append(f"stale price {n.raw} (the catalog now says {current})")
        elif n.kind == "money":
            problems.append(f"price {n.raw} is not the catalog price {current}")
        else:
            problems.append(f"{n.raw} is not in the catalog")
    return CheckResult("numbers", not problems, "; ".join(problems))
