"""Google Merchant Center (RSS 2.0 XML and TSV) and Shopify ``products.json`` readers.

See :mod:`avatarcast.catalog.feeds` for the rules each format follows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree import ElementTree as ET

from avatarcast.catalog._feed_common import (
    Record,
    availability,
    json_of,
    parse_money,
    slug,
    strip_html,
    text_of,
)
from avatarcast.catalog.model import PRODUCT_ID
from avatarcast.catalog.safe_xml import parse_xml
from avatarcast.errors import CatalogError, CatalogProblem

__all__ = ["gmc_tsv", "gmc_xml", "shopify"]

G = "{http://base.google.com/ns/1.0}"


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
        fields["availability"] = availability(avail)
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
        facts[slug(parts[1])] = {"label": parts[1], "value": parts[2]}
    fields["facts"] = facts
    points = [h.strip() for h in get("product_highlight") if h.strip()]
    if (description := first("description")) is not None:
        points.append(strip_html(description))
    fields["selling_points"] = [p for p in points if p]
    if problems:
        return problems
    return {k: v for k, v in fields.items() if v is not None}


def gmc_xml(data: bytes) -> Iterator[Record]:
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


def gmc_tsv(data: bytes) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text_of(data), newline=""), delimiter="\t")
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


def shopify(data: bytes, currency: str) -> Iterator[Record]:
    doc = json_of(data)
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
            facts[slug(str(opt["name"]))] = {"label": str(opt["name"]), "value": str(value)}
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
