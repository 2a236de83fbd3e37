"""Merchant feeds to products, row by row: every good row is kept, every bad one is reported.

Formats:

* ``gmc-xml`` — Google Merchant Center RSS 2.0 with the ``g:`` namespace.
* ``gmc-tsv`` — the same attributes as a tab-separated file with a header row; a repeated
  column (``product_highlight``) gives several values; ``product_detail`` is
  ``section:attribute:value``.
* ``shopify`` — the ``products.json`` of a shop. **One product per variant**: variants differ in
  price, stock and options, and the presenter must never quote one variant's price for another.
  The id is the variant's SKU when it is a valid product id, else ``shopify-<variant id>``.
  ``compare_at_price`` above ``price`` becomes ``price`` with ``sale_price``; ``body_html`` is
  stripped to one selling point; options become facts. products.json has no currency: pass it.
* ``json`` / ``csv`` — avatarcast's own formats, read by ``catalog.loaders.parse_catalog_bytes``:
  the whole file at once when it is good, else record by record so the good rows survive.

Rows are numbered by index (0-based) for JSON, Shopify and XML items, and by physical line
(header = 1) for CSV and TSV. XML is parsed with entities and DTDs refused (no XXE).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError

from avatarcast.catalog import merchant
from avatarcast.catalog._feed_common import Record, json_of, parse_money, strip_html, text_of
from avatarcast.catalog.loaders import parse_catalog_bytes
from avatarcast.catalog.model import Product
from avatarcast.catalog.safe_xml import parse_xml, parse_xml_stdlib
from avatarcast.errors import CatalogError, CatalogProblem

__all__ = [
    "FEED_FORMATS",
    "FeedFormat",
    "FeedResult",
    "parse_feed",
    "parse_money",
    "parse_xml",
    "parse_xml_stdlib",
    "strip_html",
]

FeedFormat = Literal["json", "csv", "gmc-xml", "gmc-tsv", "shopify"]
FEED_FORMATS: tuple[str, ...] = get_args(FeedFormat)


@dataclass(slots=True)
class FeedResult:
    products: list[Product] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)


def parse_feed(data: bytes, fmt: FeedFormat, *, currency: str = "EUR") -> FeedResult:
    """Products of the good rows and a problem per bad field; CatalogError if unreadable.

    A CSV/TSV field over the csv module's limit (128 KiB) or nesting past the parser's depth
    is an unreadable file too, never an unhandled error."""
    try:
        return _parse_feed(data, fmt, currency)
    except csv.Error as e:
        raise CatalogError(f"not valid {fmt.upper()}: {e}") from None
    except RecursionError:
        raise CatalogError(f"{fmt} feed nested too deeply to read") from None


def _parse_feed(data: bytes, fmt: FeedFormat, currency: str) -> FeedResult:
    if fmt in ("json", "csv"):
        return _with_loader(parse_catalog_bytes, data, fmt)
    if fmt == "gmc-xml":
        records = merchant.gmc_xml(data)
    elif fmt == "gmc-tsv":
        records = merchant.gmc_tsv(data)
    elif fmt == "shopify":
        records = merchant.shopify(data, currency)
    else:
        raise CatalogError(f"unknown feed format {fmt!r}; use one of {', '.join(FEED_FORMATS)}")
    return _validate_all(records)


def _validate_all(records: Iterator[Record]) -> FeedResult:
    out = FeedResult()
    for row, fields in records:
        if isinstance(fields, list):
            out.problems.extend(fields)
            continue
        try:
            out.products.append(Product.model_validate(fields))
        except ValidationError as e:
            out.problems.extend(_problems(row, e, fields.get("id")))
    return out


def _problems(row: int | str, e: ValidationError, product_id: Any) -> list[CatalogProblem]:
    named = str(product_id) if isinstance(product_id, str | int) and str(product_id) else None
    return [
        CatalogProblem(
            row=row,
            field=".".join(str(p) for p in err["loc"]) or "product",
            reason=err["msg"],
            product_id=named,
        )
        for err in e.errors()
    ]


# --- JSON and CSV ----------------------------------------------------------------------------


def _json_items(doc: Any) -> tuple[list[Any], Callable[[Any], Any]] | None:
    """The records of a JSON catalog and how to wrap one back into a file of one."""
    if isinstance(doc, list):
        return doc, lambda item: [item]
    if isinstance(doc, dict) and isinstance(doc.get("products"), list):
        return doc["products"], lambda item: {**doc, "products": [item]}
    return None


Loader = Callable[[bytes, str], list[Product]]


def _with_loader(loader: Loader, data: bytes, fmt: str) -> FeedResult:
    """All at once when the file is good; else record by record, so good rows survive."""
    try:
        return FeedResult(products=list(loader(data, fmt)))
    except CatalogError as whole:
        header_bad = fmt == "csv" and any(p.row == 1 for p in whole.problems)
        singles = _json_singles(data) if fmt == "json" else _csv_singles(data)
        if singles is None or header_bad:  # the file as a whole is unreadable
            raise
    out = FeedResult()
    for row, single in singles:
        try:
            out.products.extend(loader(single, fmt))
        except CatalogError as e:
            found = e.problems or [_problem(row, e)]
            out.problems.extend(
                CatalogProblem(row=row, field=p.field, reason=p.reason, product_id=p.product_id)
                for p in found
            )
    return out


def _problem(row: int | str, e: Exception) -> CatalogProblem:
    return CatalogProblem(row=row, field="product", reason=str(e))


def _json_singles(data: bytes) -> list[tuple[int | str, bytes]] | None:
    try:
        found = _json_items(json_of(data))
    except CatalogError:
        return None
    if found is None:
        return None
    items, wrap = found
    return [(i, json.dumps(wrap(item)).encode()) for i, item in enumerate(items)]


def _csv_singles(data: bytes) -> list[tuple[int | str, bytes]] | None:
    try:
        reader = csv.reader(io.StringIO(text_of(data), newline=""))
        header = next(reader)
    except (CatalogError, StopIteration, csv.Error):
        return None
    out: list[tuple[int | str, bytes]] = []
    for cells in reader:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, cells])
        out.append((reader.line_num, buf.getvalue().encode()))
    return out
