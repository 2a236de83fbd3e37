"""Languages the presenter speaks, and how prices and units are written and read aloud.

Captions show the price exactly as a shop in that language writes it ("€ 89,99" in Dutch,
"€89.99" in English). The voice gets a separate spoken form, because espeak-ng reads "€89.99"
as "euros eighty-nine point nine nine"; "89 euros 99" it reads as a person would. Unit
abbreviations get the same treatment: "1500 W" is read "double-u" unless spelled out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from avatarcast.errors import UnknownNameError

__all__ = [
    "LANGUAGES",
    "Language",
    "format_price",
    "language",
    "spoken_price",
    "spoken_units",
]


@dataclass(frozen=True, slots=True)
class Language:
    """A language the stream can be in. ``text`` is the language templates are written in."""

    code: str
    name: str
    text: str
    decimal: str
    group: str
    symbol_space: bool


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "English", "en", ".", ",", symbol_space=False),
    "nl": Language("nl", "Nederlands", "nl", ",", ".", symbol_space=True),
    # Chinese is declared so streams can be set up; talk falls back to English text for now.
    "zh": Language("zh", "中文", "en", ".", ",", symbol_space=False),
}

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}

#: Currency names for the voice, (singular, plural), per text language.
_SPOKEN_CURRENCY: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"EUR": ("euro", "euros"), "USD": ("dollar", "dollars"), "GBP": ("pound", "pounds")},
    "nl": {"EUR": ("euro", "euro"), "USD": ("dollar", "dollar"), "GBP": ("pond", "pond")},
}


def language(code: str) -> Language:
    """The language for ``code``; UnknownNameError names the supported ones."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise UnknownNameError("language", code, list(LANGUAGES)) from None


def _digits(amount: Decimal, lang: Language) -> str:
    whole, _, cents = f"{amount.quantize(Decimal('0.01')):f}".partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = whole.lstrip("-")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return f"{sign}{lang.group.join(groups)}{lang.decimal}{cents}"


def format_price(amount: Decimal, currency: str, lang: str) -> str:
    """The caption form of a price: ``€ 1.299,00`` (nl), ``€1,299.00`` (en), ``CHF 89.99``."""
    loc = language(lang)
    digits = _digits(amount, loc)
    symbol = _SYMBOLS.get(currency)
    if symbol is None:
        return f"{currency} {digits}"
    return f"{symbol} {digits}" if loc.symbol_space else f"{symbol}{digits}"


def spoken_price(amount: Decimal, currency: str, lang: str) -> str:
    """The price as the voice should read it: ``89 euros 99`` (en), ``89 euro 99`` (nl).

    No digit grouping: espeak-ng reads "1299" as a number but "1.299" in English as a decimal.
    """
    loc = language(lang)
    cents_total = int(amount.quantize(Decimal("0.01")) * 100)
    whole, cents = divmod(cents_total, 100)
    names = _SPOKEN_CURRENCY.get(loc.text, _SPOKEN_CURRENCY["en"]).get(currency)
    unit = currency if names is None else names[0] if whole == 1 else names[1]
    return f"{whole} {unit} {cents}" if cents else f"{whole} {unit}"


_UNITS: dict[str, dict[str, str]] = {
    "en": {
        "W": "watts",
        "kW": "kilowatts",
        "Hz": "hertz",
        "dB": "decibels",
        "cm": "centimetres",
        "mm": "millimetres",
        "kg": "kilograms",
        "g": "grams",
        "ml": "millilitres",
        "l": "litres",
        "mAh": "milliamp hours",
        "h": "hours",
        "min": "minutes",
        "ms": "milliseconds",
    },
    "nl": {
        "W": "watt",
        "kW": "kilowatt",
        "Hz": "hertz",
        "dB": "decibel",
        "cm": "centimeter",
        "mm": "millimeter",
        "kg": "kilo",
        "g": "gram",
        "ml": "milliliter",
        "l": "liter",
        "mAh": "milliampère-uur",
        "h": "uur",
        "min": "minuten",
        "ms": "milliseconden",
    },
}
_UNIT_RE = re.compile(
    r"(?<=\d)\s?(" + "|".join(sorted(_UNITS["en"], key=len, reverse=True)) + r")\b"
)
_TIMES = {"en": " by ", "nl": " bij "}


def spoken_units(text: str, lang: str) -> str:
    """Unit abbreviations after a number spelled out, and ``3440 × 1440`` read as "by"."""
    words = _UNITS.get(language(lang).text, _UNITS["en"])
    text = _UNIT_RE.sub(lambda m: " " + words[m.group(1)], text)
    return re.sub(r"\s*×\s*", _TIMES.get(language(lang).text, " by "), text)
