"""Catalog files and locale formatting: the demo files load, every bad input is named exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from avatarcast.catalog.loaders import load_catalog, parse_catalog_bytes
from avatarcast.errors import CatalogError, UnknownNameError
from avatarcast.locale import format_price, language, spoken_price, spoken_units

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _product(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "kettle-1",
        "title": {"en": "Kettle", "nl": "Waterkoker"},
        "brand": "Brewly",
        "price": "39.99",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def _json_error(products: list[dict[str, Any]]) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        parse_catalog_bytes(json.dumps({"products": products}).encode(), "json")
    return info.value


# --- the demo files ---------------------------------------------------------------------------


def test_demo_json_loads_with_english_and_dutch() -> None:
    products = load_catalog(CONFIGS / "demo-catalog.json")
    assert len(products) >= 6
    assert len({p.id for p in products}) == len(products)
    for p in products:
        assert p.title_in("en") and p.title_in("nl") and p.title_in("en") != ""
        assert 4 <= len(p.facts) <= 6
        assert 3 <= len(p.selling_points) <= 4
        assert 2 <= len(p.faq) <= 3
        for fact in p.facts.values():
            assert isinstance(fact.label, dict) and set(fact.label) == {"en", "nl"}
            assert isinstance(fact.value, dict) and set(fact.value) == {"en", "nl"}
    airfryer = next(p for p in products if p.id == "kovana-af550")
    assert airfryer.sale_price == Decimal("89.99")
    assert airfryer.prior_lowest_price == Decimal("99.99")
    assert airfryer.facts["capacity"].value_in("nl") == "5,5 liter"
    assert any(p.sale_price is None for p in products)


def test_demo_csv_matches_the_json_for_shared_fields() -> None:
    from_csv = {p.id: p for p in load_catalog(CONFIGS / "demo-catalog.csv")}
    from_json = {p.id: p for p in load_catalog(CONFIGS / "demo-catalog.json")}
    assert len(from_csv) >= 3
    for pid, p in from_csv.items():
        full = from_json[pid]
        assert (p.price, p.sale_price, p.prior_lowest_price, p.stock) == (
            full.price,
            full.sale_price,
            full.prior_lowest_price,
            full.stock,
        )
        assert p.title == full.title
        for key, fact in p.facts.items():
            assert fact.value_in("nl") == full.facts[key].value_in("nl")
            assert fact.label_in("en") == full.facts[key].label_in("en")
        assert p.selling_points == full.selling_points[:2]
        assert p.faq == full.faq[-1:]
    assert from_csv["kovana-af550"].facts["capacity"].value == {
        "en": "5.5 litres",
        "nl": "5,5 liter",
    }
    assert from_csv["mixwell-vortex1400"].sale_price is None


def test_json_may_be_a_bare_list_and_numbers_stay_exact() -> None:
    data = b'[{"id": "a", "title": "A", "brand": "B", "price": 0.10, "facts": {"w": 1.1}}]'
    (p,) = parse_catalog_bytes(data, "json")
    assert p.price == Decimal("0.10")
    assert p.facts["w"].value == "1.1"


def test_csv_plain_columns_and_shared_selling_points() -> None:
    data = (
        b"id,title,brand,price,stock,fact.weight,selling_points,faq.2.question,faq.2.answer\n"
        b"k1,Kettle,Brewly,39.99,3,1.2 kg,quiet|fast boil,Cordless?,Yes.\n"
    )
    (p,) = parse_catalog_bytes(data, "csv")
    assert p.facts["weight"].label == "weight" and p.facts["weight"].value == "1.2 kg"
    assert p.selling_points == ["quiet", "fast boil"]
    assert p.faq[0].question == "Cordless?"
    assert p.stock == 3


# --- bad input --------------------------------------------------------------------------------


def test_missing_field_names_row_and_field() -> None:
    err = _json_error([_product(), _product(id="b", brand=None)])
    assert [(p.row, p.field) for p in err.problems] == [(1, "brand")]
    assert 'products[1] (id "b").brand: is required' in str(err)


def test_invalid_price_names_the_value() -> None:
    err = _json_error([_product(), _product(id="b"), _product(id="c", price="abc")])
    assert "products[2] (id \"c\").price: 'abc' is not a valid decimal" in str(err)
    assert err.problems[0].row == 2 and err.problems[0].field == "price"


def test_bad_currency_names_the_value() -> None:
    err = _json_error([_product(currency="euro")])
    assert err.problems[0].field == "currency"
    assert "products[0] (id \"kettle-1\").currency: 'euro'" in str(err)
    assert "ISO 4217" in str(err)


def test_sale_price_not_below_price() -> None:
    err = _json_error([_product(sale_price="39.99")])
    assert err.problems[0].field == "sale_price"
    assert (
        "products[0] (id \"kettle-1\").sale_price: '39.99' is not lower than price '39.99'"
        in str(err)
    )


def test_duplicate_id_names_both_rows() -> None:
    err = _json_error([_product(), _product(id="other"), _product()])
    assert [(p.row, p.field) for p in err.problems] == [(2, "id")]
    assert "products[2] (id \"kettle-1\").id: 'kettle-1' duplicates products[0]" in str(err)


def test_every_bad_row_is_collected() -> None:
    err = _json_error([_product(price="x"), _product(id="b", stock=-1), _product(id="c")])
    assert [(p.row, p.field) for p in err.problems] == [(0, "price"), (1, "stock")]
    assert str(err).startswith("catalog: 2 problems:")


def test_bad_json() -> None:
    with pytest.raises(CatalogError, match="not valid JSON"):
        parse_catalog_bytes(b'{"products": [', "json")


def test_empty_catalog() -> None:
    with pytest.raises(CatalogError, match="no products"):
        parse_catalog_bytes(b'{"products": []}', "json")
    with pytest.raises(CatalogError, match="no products"):
        parse_catalog_bytes(b"id,title,brand,price\n", "csv")


def test_unknown_extension_and_unreadable_file(tmp_path: Path) -> None:
    sheet = tmp_path / "catalog.xlsx"
    sheet.write_bytes(b"PK")
    with pytest.raises(CatalogError, match=r"unknown catalog file type '\.xlsx'"):
        load_catalog(sheet)
    with pytest.raises(CatalogError, match="cannot read catalog"):
        load_catalog(tmp_path / "missing.json")
    with pytest.raises(CatalogError, match="unknown catalog format"):
        parse_catalog_bytes(b"", "xml")


def test_csv_problems_are_numbered_by_line() -> None:
    data = (
        b"id,title,brand,price,currency\n"
        b"a,A,Brand,10.00,EUR\n"
        b"b,B,Brand,ten,EUR\n"
        b"c,C,,10.00,eur\n"
        b"a,A again,Brand,11.00,EUR\n"
    )
    with pytest.raises(CatalogError) as info:
        parse_catalog_bytes(data, "csv", source="shop.csv")
    found = [(p.row, p.field) for p in info.value.problems]
    assert found == [(3, "price"), (4, "brand"), (4, "currency"), (5, "id")]
    message = str(info.value)
    assert message.startswith(
        """shop.csv: 4 problems: line 3 (id "b"): price: 'ten' is not a valid decimal"""
    )
    assert """line 5 (id "a"): id: 'a' duplicates line 2""" in message


def test_csv_unknown_column_and_mismatched_languages() -> None:
    with pytest.raises(CatalogError, match="line 1: colour: unknown column"):
        parse_catalog_bytes(b"id,title,brand,price,colour\na,A,B,1.00,red\n", "csv")
    data = b"id,title,brand,price,selling_points.en,selling_points.nl\na,A,B,1.00,x|y,x\n"
    with pytest.raises(CatalogError, match="different numbers of points"):
        parse_catalog_bytes(data, "csv")


def test_file_load_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps([_product(price="-1")]))
    with pytest.raises(
        CatalogError, match=r"shop\.json: 1 problem: products\[0\] \(id \"kettle-1\"\)\.price: '-1'"
    ):
        load_catalog(path)


# --- locale -----------------------------------------------------------------------------------


def test_price_formats_are_exact() -> None:
    assert format_price(Decimal("89.99"), "EUR", "nl") == "€ 89,99"
    assert format_price(Decimal("89.99"), "EUR", "en") == "€89.99"
    assert format_price(Decimal("1299"), "EUR", "nl") == "€ 1.299,00"
    assert format_price(Decimal("1299"), "EUR", "en") == "€1,299.00"
    assert format_price(Decimal("5"), "USD", "en") == "$5.00"
    assert format_price(Decimal("5.5"), "CHF", "nl") == "CHF 5,50"


def test_spoken_prices_and_units() -> None:
    assert spoken_price(Decimal("89.99"), "EUR", "en") == "89 euros 99"
    assert spoken_price(Decimal("89.99"), "EUR", "nl") == "89 euro 99"
    assert spoken_price(Decimal("1.00"), "EUR", "en") == "1 euro"
    assert spoken_price(Decimal("1299.05"), "EUR", "en") == "1299 euros 5"
    assert spoken_units("1500 W and 3440 × 1440", "nl") == "1500 watt and 3440 bij 1440"
    assert spoken_units("Pico 300 mini, 2 litres", "en") == "Pico 300 mini, 2 litres"


def test_unknown_language() -> None:
    assert language("zh").text == "en"
    with pytest.raises(UnknownNameError, match="unknown language 'fr'; available: en, nl, zh"):
        format_price(Decimal(1), "EUR", "fr")
