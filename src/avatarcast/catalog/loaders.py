"""Catalog files (avatarcast's own JSON and CSV) to products, with every problem reported at once.

JSON is a list of products or ``{"products": [...]}``; each product has the fields of
:class:`~avatarcast.catalog.model.Product`. Numbers are read as exact decimals.

CSV has a header row and one product per row. Empty cells count as absent. Columns:

* ``id, title, brand, price, currency, sale_price, prior_lowest_price, availability, stock,
  image, url`` — the product fields. ``title.<lang>`` gives the title in one language.
* ``fact.<key>`` — a fact's value in every language; ``fact.<key>.<lang>`` — in one language.
  ``fact.<key>.label`` / ``fact.<key>.label.<lang>`` — its label (default: the key, with
  ``_`` read as a space).
* ``selling_points`` — points separated by ``|``; ``selling_points.<lang>`` — the same points
  in one language, in the same order (so every language column must have as many).
* ``faq.<n>.question``, ``faq.<n>.answer`` — with an optional ``.<lang>``; ``n`` orders them.

Problems are numbered like the rest of avatarcast: ``products[i]`` (0-based) for JSON, the
physical line (header = 1) for CSV.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from avatarcast.catalog._feed_common import MAX_JSON_DEPTH, check_depth
from avatarcast.catalog.model import Product
from avatarcast.errors import CatalogError, CatalogProblem

__all__ = ["CATALOG_FORMATS", "load_catalog", "parse_catalog_bytes"]

CATALOG_FORMATS = ("json", "csv")
_SHOWN = 5  # problems named in the error message

_PLAIN = frozenset(
    (
        "id", "title", "brand", "price", "currency", "sale_price", "prior_lowest_price",
        "availability", "stock", "image", "url",
    )
)  # fmt: skip
_LANG = r"[a-z]{2,3}(?:-[A-Za-z]{2,4})?"
_KEY = r"[A-Za-z0-9_]+"
_TITLE = re.compile(rf"title\.(?P<lang>{_LANG})")
_FACT = re.compile(rf"fact\.(?P<key>{_KEY})(?P<label>\.label)?(?:\.(?P<lang>{_LANG}))?")
_POINTS = re.compile(rf"selling_points(?:\.(?P<lang>{_LANG}))?")
_FAQ = re.compile(rf"faq\.(?P<n>\d+)\.(?P<part>question|answer)(?:\.(?P<lang>{_LANG}))?")


def load_catalog(path: str | Path) -> list[Product]:
    """Products of a ``.json`` or ``.csv`` catalog file; CatalogError lists what is wrong."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in CATALOG_FORMATS:
        raise CatalogError(
            f"unknown catalog file type {path.suffix or '(none)'!r} for {str(path)!r}; "
            "expected .json or .csv"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"cannot read catalog {str(path)!r}: {e.strerror or e}") from e
    return parse_catalog_bytes(data, fmt, source=str(path))


def parse_catalog_bytes(data: bytes, fmt: str, *, source: str = "catalog") -> list[Product]:
    """Products of a catalog in ``fmt`` (``json`` or ``csv``), all rows valid or CatalogError."""
    if fmt not in CATALOG_FORMATS:
        raise CatalogError(f"unknown catalog format {fmt!r}; expected one of: json, csv")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(f"{source}: not UTF-8 text (byte {e.start})") from e
    records = _json_records(text, source) if fmt == "json" else _csv_records(text, source)
    products: list[Product] = []
    problems: list[CatalogProblem] = []
    first_row: dict[str, int | str] = {}
    count = 0
    for row, fields, found in records:
        count += 1
        problems.extend(found)
        product = _validate(row, fields, problems) if not found else None
        if product is None:
            continue
        if product.id in first_row:
            where = _where(first_row[product.id], fmt)
            problems.append(
                CatalogProblem(
                    row=row,
                    field="id",
                    reason=f"{product.id!r} duplicates {where}",
                    product_id=product.id,
                )
            )
            continue
        first_row[product.id] = row
        products.append(product)
    if problems:
        raise CatalogError(_summary(source, fmt, problems), problems=problems)
    if not count:
        raise CatalogError(f"{source}: the catalog has no products")
    return products


# --- JSON ------------------------------------------------------------------------------------

Record = tuple[int | str, dict[str, Any], list[CatalogProblem]]


def _json_records(text: str, source: str) -> Iterator[Record]:
    try:
        doc = json.loads(text, parse_float=str)
    except json.JSONDecodeError as e:
        raise CatalogError(f"{source}: not valid JSON: {e.msg} at line {e.lineno}") from e
    except RecursionError:
        raise CatalogError(f"{source}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    try:
        check_depth(doc)
    except CatalogError as e:
        raise CatalogError(f"{source}: {e}") from None
    items = doc.get("products") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise CatalogError(f'{source}: expected a list of products or {{"products": [...]}}')
    for i, item in enumerate(items):
        if isinstance(item, dict):
            yield i, item, []
        else:
            bad = CatalogProblem(row=i, field="product", reason=f"{_short(item)} is not an object")
            yield i, {}, [bad]


# --- CSV -------------------------------------------------------------------------------------


def _csv_records(text: str, source: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as e:
        raise CatalogError(f"{source}: not valid CSV: {e}") from e
    unknown = [h for h in header if h and not _column_known(h)]
    if unknown:
        problems = [CatalogProblem(row=1, field=h, reason="unknown column") for h in unknown]
        raise CatalogError(_summary(source, "csv", problems), problems=problems)
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            line = reader.line_num
            if len(cells) > len(header):
                extra = f"{len(cells)} cells but the header has {len(header)} columns"
                yield line, {}, [CatalogProblem(row=line, field="row", reason=extra)]
                continue
            row = {h: c.strip() for h, c in zip(header, cells, strict=False) if h and c.strip()}
            fields, problems = _csv_fields(line, row)
            yield line, fields, problems
    except csv.Error as e:
        raise CatalogError(f"{source}: not valid CSV at line {reader.line_num}: {e}") from e


def _column_known(name: str) -> bool:
    return name in _PLAIN or any(p.fullmatch(name) for p in (_TITLE, _FACT, _POINTS, _FAQ))


def _csv_fields(line: int, row: dict[str, str]) -> tuple[dict[str, Any], list[CatalogProblem]]:
    fields: dict[str, Any] = {k: v for k, v in row.items() if k in _PLAIN}
    titles = {m["lang"]: v for k, v in row.items() if (m := _TITLE.fullmatch(k))}
    if titles:
        fields["title"] = {"en": fields["title"], **titles} if "title" in fields else titles
    facts: dict[str, dict[str, Any]] = {}
    points: dict[str | None, list[str]] = {}
    faq: dict[int, dict[str, Any]] = {}
    for name, value in row.items():
        if m := _FACT.fullmatch(name):
            fact = facts.setdefault(m["key"], {})
            _put(fact, "label" if m["label"] else "value", m["lang"], value)
        elif m := _POINTS.fullmatch(name):
            points[m["lang"]] = [p.strip() for p in value.split("|") if p.strip()]
        elif m := _FAQ.fullmatch(name):
            _put(faq.setdefault(int(m["n"]), {}), m["part"], m["lang"], value)
    problems: list[CatalogProblem] = []
    for key, fact in facts.items():
        if "value" not in fact:
            problems.append(CatalogProblem(row=line, field=f"fact.{key}", reason="has no value"))
        fact.setdefault("label", key.replace("_", " "))
    if facts:
        fields["facts"] = facts
    if points:
        fields["selling_points"] = _zip_points(line, points, problems)
    for n, entry in faq.items():
        for part in ("question", "answer"):
            if part not in entry:
                problems.append(
                    CatalogProblem(row=line, field=f"faq.{n}.{part}", reason="is missing")
                )
    if faq:
        fields["faq"] = [faq[n] for n in sorted(faq)]
    return fields, problems


def _put(target: dict[str, Any], part: str, lang: str | None, value: str) -> None:
    """Set ``target[part]`` to ``value``, or to a language mapping when ``lang`` is given."""
    if lang is None:
        if isinstance(target.get(part), dict):
            target[part].setdefault("en", value)
        else:
            target[part] = value
        return
    current = target.get(part)
    mapping = current if isinstance(current, dict) else {}
    if isinstance(current, str):
        mapping.setdefault("en", current)
    mapping[lang] = value
    target[part] = mapping


def _zip_points(
    line: int, points: dict[str | None, list[str]], problems: list[CatalogProblem]
) -> list[str | dict[str, str]]:
    if list(points) == [None]:
        return list(points[None])
    counts = {lang: len(items) for lang, items in points.items()}
    if len(set(counts.values())) > 1:
        detail = ", ".join(
            f"{'selling_points' + ('.' + lang if lang else '')}: {n}" for lang, n in counts.items()
        )
        problems.append(
            CatalogProblem(
                row=line,
                field="selling_points",
                reason=f"languages list different numbers of points ({detail})",
            )
        )
        return []
    n = next(iter(counts.values()))
    return [{lang or "en": items[i] for lang, items in points.items()} for i in range(n)]


# --- validation ------------------------------------------------------------------------------


def _validate(
    row: int | str, fields: dict[str, Any], problems: list[CatalogProblem]
) -> Product | None:
    try:
        return Product.model_validate(fields)
    except ValidationError as e:
        seen: set[str] = set()
        product_id = _id_of(fields)
        for err in e.errors():
            problem = _problem(row, fields, err)
            problem.product_id = product_id
            if problem.field not in seen:
                seen.add(problem.field)
                problems.append(problem)
        return None


def _id_of(fields: dict[str, Any]) -> str | None:
    """The row's product id, when it has a usable one."""
    value = fields.get("id")
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        text = str(value).strip()
        return text if len(text) <= 64 else text[:61] + "..."
    return None


_UNION_TAG = re.compile(r"^(?:str|int|float|bool|decimal|[a-z-]+\[.*\])$")


def _problem(row: int | str, fields: dict[str, Any], err: Any) -> CatalogProblem:
    """A pydantic error as a problem whose reason quotes the value that was given."""
    loc = [str(p) for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))]
    name = ".".join(loc) or "product"
    kind: str = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return CatalogProblem(row=row, field=name, reason="is required")
    if kind == "extra_forbidden":
        return CatalogProblem(row=row, field=name, reason="is not a product field")
    if not loc and "sale_price" in str(err["msg"]):
        sale, price = fields.get("sale_price"), fields.get("price")
        return CatalogProblem(
            row=row,
            field="sale_price",
            reason=f"{_short(sale)} is not lower than price {_short(price)}",
        )
    reasons = {
        "decimal_parsing": "is not a valid decimal",
        "decimal_type": "is not a valid decimal",
        "decimal_max_places": f"has more than {ctx.get('decimal_places')} decimal places",
        "decimal_max_digits": f"has more than {ctx.get('max_digits')} digits",
        "greater_than": f"must be greater than {ctx.get('gt')}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "int_parsing": "is not a whole number",
        "int_from_float": "is not a whole number",
        "int_type": "is not a whole number",
        "literal_error": f"is not one of {ctx.get('expected')}",
        "string_type": "is not a text",
        "dict_type": "is not an object",
        "list_type": "is not a list",
        "string_too_short": "must not be empty",
    }
    msg = str(err["msg"]).removeprefix("Value error, ")
    reason = reasons.get(kind, msg)
    return CatalogProblem(row=row, field=name, reason=f"{_short(value)} {reason}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(row: int | str, fmt: str, product_id: str | None = None) -> str:
    """``products[2] (id "airfryer-xl")`` / ``line 4 (id "airfryer-xl")``: the position, and
    the id a person searches a catalog of hundreds of products for."""
    named = f" (id {json.dumps(product_id, ensure_ascii=False)})" if product_id else ""
    if isinstance(row, int):
        return (f"products[{row}]" if fmt == "json" else f"line {row}") + named
    return str(row) + named


def _summary(source: str, fmt: str, problems: list[CatalogProblem]) -> str:
    shown = "; ".join(
        f"{_where(p.row, fmt, p.product_id)}{'.' if fmt == 'json' else ': '}{p.field}: {p.reason}"
        for p in problems[:_SHOWN]
    )
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    noun = "problem" if len(problems) == 1 else "problems"
    return f"{source}: {len(problems)} {noun}: {shown}{more}"
