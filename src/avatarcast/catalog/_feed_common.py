"""What the feed readers share: decoding, money, slugs and HTML to text."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import Any

from avatarcast.errors import CatalogError, CatalogProblem

__all__ = [
    "MAX_JSON_DEPTH",
    "Record",
    "check_depth",
    "json_of",
    "loads_bounded",
    "parse_money",
    "slug",
    "strip_html",
    "text_of",
]

#: Deepest nesting a catalog may have. A product is 4 levels deep (catalog, product, facts,
#: a fact's languages); a file nested thousands deep only exists to exhaust the parser.
MAX_JSON_DEPTH = 32

Record = tuple[int | str, dict[str, Any] | list[CatalogProblem]]
"""A row number (or path) and either the row's product fields or what is wrong with it."""


def text_of(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(f"feed is not UTF-8: {e}") from None


def json_of(data: bytes) -> Any:
    return loads_bounded(text_of(data))


def loads_bounded(text: str, **kwargs: Any) -> Any:
    """``json.loads`` that answers CatalogError, not RecursionError, for deep nesting."""
    try:
        doc = json.loads(text, **kwargs)
    except json.JSONDecodeError as e:
        raise CatalogError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise CatalogError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_depth(doc)
    return doc


def check_depth(doc: Any) -> None:
    """Without recursion: the nesting of ``doc`` is at most ``MAX_JSON_DEPTH``."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise CatalogError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


# --- money -----------------------------------------------------------------------------------

_MONEY = re.compile(r"^\s*(?:([A-Z]{3})\s*)?([0-9][0-9.,]*)\s*(?:([A-Z]{3}))?\s*$")


def parse_money(text: str) -> tuple[Decimal, str | None]:
    """``"89.99 EUR"``, ``"EUR 89.99"``, ``"1,299.00 EUR"``, ``"89,99 EUR"`` -> amount, currency."""
    m = _MONEY.match(text)
    if not m or (m.group(1) and m.group(3)):
        raise ValueError(f"{text!r} is not an amount with a currency like '89.99 EUR'")
    number = m.group(2)
    if "," in number and "." in number:
        number = number.replace(",", "")
    elif "," in number:
        number = number.replace(",", ".")
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    return amount, m.group(1) or m.group(3)


def availability(text: str) -> str:
    return text.strip().lower().replace(" ", "_").replace("-", "_")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "detail"


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p", "li", "div"):
            self.parts.append(" ")


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    return " ".join(html.unescape("".join(parser.parts)).split())
