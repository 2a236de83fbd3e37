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
* ``json`` / ``csv`` — avatarcast's own formats. When ``catalog.loaders`` is installed its
  ``parse_catalog_bytes`` defines them and is called record by record; otherwise a built-in
  reading applies (JSON: a list or ``{"products": [...]}``; CSV: product fields as columns,
  ``fact:<key>`` columns, ``selling_points`` separated by ``|``).

Rows are numbered by index (0-based) for JSON, Shopify and XML items, and by physical line
(header = 1) for CSV and TSV. XML is parsed with entities and DTDs refused (no XXE).
"""

from __future__ import annotations

import csv
import html
import importlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import Any, Literal, get_args
from xml.etree import ElementTree as ET
from xml.parsers import expat

from pydantic import ValidationError

from avatarcast.catalog.model import PRODUCT_ID, Product
from avatarcast.errors import CatalogError, CatalogProblem

FeedFormat = Literal["json", "csv", "gmc-xml", "gmc-tsv", "shopify"]
FEED_FORMATS: tuple[str, ...] = get_args(FeedFormat)
G = "{http://base.google.com/ns/1.0}"


@dataclass(slots=True)
class FeedResult:
    products: list[Product] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)


Record = tuple[int | str, dict[str, Any] | list[CatalogProblem]]


def parse_feed(data: bytes, fmt: FeedFormat, *, currency: str = "EUR") -> FeedResult:
    """Products of the good rows and a problem per bad field; CatalogError if unreadable."""
    if fmt in ("json", "csv"):
        loader = _loader()
        if loader is not None:
            return _with_loader(loader, data, fmt)
        records = _own_json(data) if fmt == "json" else _own_csv(data)
    elif fmt == "gmc-xml":
        records = _gmc_xml(data)
    elif fmt == "gmc-tsv":
        records = _gmc_tsv(data)
    elif fmt == "shopify":
        records = _shopify(data, currency)
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
            out.problems.extend(_problems(row, e))
    return out


def _problems(row: int | str, e: ValidationError) -> list[CatalogProblem]:
    return [
        CatalogProblem(
            row=row, field=".".join(str(p) for p in err["loc"]) or "product", reason=err["msg"]
        )
        for err in e.errors()
    ]


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(f"feed is not UTF-8: {e}") from None


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


def _availability(text: str) -> str:
    return text.strip().lower().replace(" ", "_").replace("-", "_")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "detail"


# --- Google Merchant Center ------------------------------------------------------------------


def _gmc_fields(
    row: int | str, get: Callable[[str], list[str]]
) -> dict[str, Any] | list[CatalogProblem]:
    """Product fields from GMC attributes; ``get(name)`` gives every value of one attribute."""
    problems: list[CatalogProblem] = []

    def first(name: str) -> str | None:
        values = [v.strip() for v in get(name) if v.strip()]
        return values[0] if values else None

    fields: dict[str, Any] = {"id": first("id"), "title": first("title"), "brand": first("brand")}
    for attr in ("price", "sale_price"):
        raw = first(attr)
        if raw is None:
            continue
        try:
            amount, cur = parse_money(raw)
        except ValueError as e:
            problems.append(CatalogProblem(row=row, field=attr, reason=str(e)))
            continue
        fields[attr] = amount
        if cur is None:
            problems.append(CatalogProblem(row=row, field=attr, reason="currency is missing"))
        elif fields.setdefault("currency", cur) != cur:
            problems.append(CatalogProblem(row=row, field=attr, reason="currency differs"))
    if (avail := first("availability")) is not None:
        fields["availability"] = _availability(avail)
    fields["image"] = first("image_link")
    fields["url"] = first("link")
    facts: dict[str, dict[str, str]] = {}
    for detail in get("product_detail"):
        if not detail.replace(":", "").strip():
            continue
        parts = [p.strip() for p in detail.split(":", 2)]
        if len(parts) != 3 or not parts[1] or not parts[2]:
            reason = "expected section:attribute:value"
            problems.append(CatalogProblem(row=row, field="product_detail", reason=reason))
            continue
        facts[_slug(parts[1])] = {"label": parts[1], "value": parts[2]}
    fields["facts"] = facts
    points = [h.strip() for h in get("product_highlight") if h.strip()]
    if (description := first("description")) is not None:
        points.append(strip_html(description))
    fields["selling_points"] = [p for p in points if p]
    if problems:
        return problems
    return {k: v for k, v in fields.items() if v is not None}


def _gmc_xml(data: bytes) -> Iterator[Record]:
    root = parse_xml(data)
    channel = root.find("channel")
    items = (channel if channel is not None else root).findall("item")
    if not items:
        raise CatalogError("no <item> in the feed (expected RSS 2.0 <rss><channel><item>)")
    for i, item in enumerate(items):

        def get(name: str, item: ET.Element = item) -> list[str]:
            found = item.findall(G + name) or item.findall(name)
            if name == "product_detail":
                return [_gmc_detail(el) for el in found]
            return [el.text or "" for el in found]

        yield i, _gmc_fields(i, get)


def _gmc_detail(el: ET.Element) -> str:
    parts = [el.findtext(G + n, default="") for n in ("section_name", "attribute_name")]
    return ":".join([*parts, el.findtext(G + "attribute_value", default="")])


def _gmc_tsv(data: bytes) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(_text(data), newline=""), delimiter="\t")
    try:
        header = [h.strip().lower().removeprefix("g:") for h in next(reader)]
    except StopIteration:
        raise CatalogError("empty TSV feed") from None
    if "id" not in header:
        raise CatalogError("TSV feed has no 'id' column in its header")
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue

        def get(name: str, cells: list[str] = cells) -> list[str]:
            return [c for h, c in zip(header, cells, strict=False) if h == name]

        yield line, _gmc_fields(line, get)


# --- Shopify ---------------------------------------------------------------------------------


def _shopify(data: bytes, currency: str) -> Iterator[Record]:
    doc = _json(data)
    products = doc.get("products") if isinstance(doc, dict) else None
    if not isinstance(products, list):
        raise CatalogError('expected a Shopify products.json: {"products": [...]}')
    for i, prod in enumerate(products):
        if not isinstance(prod, dict):
            yield i, [CatalogProblem(row=i, field="product", reason="not an object")]
            continue
        variants = prod.get("variants") or []
        if not isinstance(variants, list) or not variants:
            yield i, [CatalogProblem(row=i, field="variants", reason="no variants")]
            continue
        for j, variant in enumerate(variants):
            row = f"products[{i}].variants[{j}]"
            if not isinstance(variant, dict):
                yield row, [CatalogProblem(row=row, field="variant", reason="not an object")]
                continue
            yield row, _shopify_variant(row, prod, variant, currency)


def _shopify_variant(
    row: str, prod: dict[str, Any], var: dict[str, Any], currency: str
) -> dict[str, Any] | list[CatalogProblem]:
    problems: list[CatalogProblem] = []
    sku = str(var.get("sku") or "").strip()
    pid = sku if PRODUCT_ID.match(sku) else f"shopify-{var.get('id')}"
    title = str(prod.get("title") or "").strip()
    vtitle = str(var.get("title") or "").strip()
    if vtitle and vtitle != "Default Title":
        title = f"{title} – {vtitle}"
    prices: dict[str, Decimal | None] = {}
    for key in ("price", "compare_at_price"):
        raw = var.get(key)
        try:
            prices[key] = None if raw in (None, "") else Decimal(str(raw))
        except InvalidOperation:
            problems.append(CatalogProblem(row=row, field=key, reason=f"{raw!r} is not a number"))
    if problems:
        return problems
    price, compare = prices.get("price"), prices.get("compare_at_price")
    fields: dict[str, Any] = {
        "id": pid,
        "title": title,
        "brand": prod.get("vendor"),
        "price": price,
    }
    fields["currency"] = currency
    if price is not None and compare is not None and compare > price:
        fields["price"], fields["sale_price"] = compare, price
    qty = var.get("inventory_quantity")
    if isinstance(qty, int):
        fields["stock"] = max(qty, 0)
        if qty <= 0 and var.get("inventory_management"):
            deny = var.get("inventory_policy", "deny") == "deny"
            fields["availability"] = "out_of_stock" if deny else "backorder"
    if var.get("available") is False:
        fields["availability"] = "out_of_stock"
    facts: dict[str, dict[str, str]] = {}
    for n, opt in enumerate(prod.get("options") or [], start=1):
        value = var.get(f"option{n}")
        if isinstance(opt, dict) and opt.get("name") and value and value != "Default Title":
            facts[_slug(str(opt["name"]))] = {"label": str(opt["name"]), "value": str(value)}
    if prod.get("product_type"):
        facts.setdefault("type", {"label": "Type", "value": str(prod["product_type"])})
    fields["facts"] = facts
    if body := strip_html(str(prod.get("body_html") or "")):
        fields["selling_points"] = [body]
    fields["image"] = _shopify_image(prod, var)
    return {k: v for k, v in fields.items() if v is not None}


def _shopify_image(prod: dict[str, Any], var: dict[str, Any]) -> str | None:
    images = [im for im in prod.get("images") or [] if isinstance(im, dict)]
    for im in images:
        if var.get("image_id") is not None and im.get("id") == var.get("image_id"):
            return str(im.get("src"))
    main = prod.get("image")
    if isinstance(main, dict) and main.get("src"):
        return str(main["src"])
    return str(images[0]["src"]) if images and images[0].get("src") else None


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


# --- JSON and CSV ----------------------------------------------------------------------------


def _json(data: bytes) -> Any:
    try:
        return json.loads(_text(data))
    except json.JSONDecodeError as e:
        raise CatalogError(f"not valid JSON: {e}") from None


def _json_items(doc: Any) -> tuple[list[Any], Callable[[Any], Any]] | None:
    """The records of a JSON catalog and how to wrap one back into a file of one."""
    if isinstance(doc, list):
        return doc, lambda item: [item]
    if isinstance(doc, dict) and isinstance(doc.get("products"), list):
        return doc["products"], lambda item: {**doc, "products": [item]}
    return None


def _own_json(data: bytes) -> Iterator[Record]:
    found = _json_items(_json(data))
    if found is None:
        raise CatalogError('expected a JSON list of products or {"products": [...]}')
    yield from enumerate(found[0])


_CSV_LISTS = {"selling_points": "|"}


def _own_csv(data: bytes) -> Iterator[Record]:
    reader = csv.DictReader(io.StringIO(_text(data), newline=""))
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise CatalogError("CSV has no 'id' column in its header")
    for record in reader:
        fields: dict[str, Any] = {}
        facts: dict[str, str] = {}
        for key, value in record.items():
            if key is None or value is None or not value.strip():
                continue
            key, value = key.strip(), value.strip()
            if key.startswith(("fact:", "facts.")):
                facts[key.split(":", 1)[-1].split(".", 1)[-1]] = value
            elif key in _CSV_LISTS:
                fields[key] = [v.strip() for v in value.split(_CSV_LISTS[key]) if v.strip()]
            else:
                fields[key] = value
        if facts:
            fields["facts"] = facts
        yield reader.line_num, fields


# --- the catalog.loaders bridge --------------------------------------------------------------

Loader = Callable[[bytes, str], list[Product]]


def _loader() -> Loader | None:
    try:
        module = importlib.import_module("avatarcast.catalog.loaders")
    except ImportError:
        return None
    fn = getattr(module, "parse_catalog_bytes", None)
    return fn if callable(fn) else None


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
                CatalogProblem(row=row, field=p.field, reason=p.reason) for p in found
            )
    return out


def _problem(row: int | str, e: Exception) -> CatalogProblem:
    return CatalogProblem(row=row, field="product", reason=str(e))


def _json_singles(data: bytes) -> list[tuple[int | str, bytes]] | None:
    try:
        found = _json_items(json.loads(_text(data)))
    except (json.JSONDecodeError, CatalogError):
        return None
    if found is None:
        return None
    items, wrap = found
    return [(i, json.dumps(wrap(item)).encode()) for i, item in enumerate(items)]


def _csv_singles(data: bytes) -> list[tuple[int | str, bytes]] | None:
    try:
        reader = csv.reader(io.StringIO(_text(data), newline=""))
        header = next(reader)
    except (CatalogError, StopIteration, csv.Error):
        return None
    out: list[tuple[int | str, bytes]] = []
    for cells in reader:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, cells])
        out.append((reader.line_num, buf.getvalue().encode()))
    return out


# --- XML without entities --------------------------------------------------------------------


def parse_xml(data: bytes) -> ET.Element:
    """Parse with DTDs and entities refused: defusedxml when installed, else guarded expat."""
    try:
        defused: Any = importlib.import_module("defusedxml.ElementTree")
    except ImportError:
        return parse_xml_stdlib(data)
    try:
        root: ET.Element = defused.fromstring(data, forbid_dtd=True)
    except ET.ParseError as e:
        raise CatalogError(f"not well-formed XML: {e}") from None
    except Exception as e:  # defusedxml's DTDForbidden, EntitiesForbidden, ...
        raise CatalogError(f"XML refused: {type(e).__name__}") from None
    return root


def parse_xml_stdlib(data: bytes) -> ET.Element:
    """The stdlib's expat with a handler that refuses any DOCTYPE (hence any entity)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_args: object) -> None:
        raise CatalogError("XML refused: DOCTYPE and entities are not allowed")

    def start(name: str, attrs: dict[str, str]) -> None:
        builder.start("{" + name if "}" in name else name, attrs)

    def end(name: str) -> None:
        builder.end("{" + name if "}" in name else name)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise CatalogError(f"not well-formed XML: {e}") from None
    return builder.close()
