"""Feed parsers without the API: money, XML safety, the loaders bridge, Shopify decisions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from avatarcast.catalog.feeds import parse_feed, parse_money, parse_xml, parse_xml_stdlib
from avatarcast.errors import CatalogError

FEEDS = Path(__file__).parent / "data" / "feeds"

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item>
<g:id>X</g:id><title>&xxe;</title><g:brand>B</g:brand><g:price>1.00 EUR</g:price>
</item></channel></rss>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<rss><channel><item><title>&lol2;</title></item></channel></rss>"""


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("89.99 EUR", "89.99", "EUR"),
        ("EUR 89.99", "89.99", "EUR"),
        ("1,299.00 USD", "1299.00", "USD"),
        ("89,99 EUR", "89.99", "EUR"),
        ("5 GBP", "5", "GBP"),
        ("12.50", "12.50", None),
    ],
)
def test_parse_money(text: str, amount: str, currency: str | None) -> None:
    assert parse_money(text) == (Decimal(amount), currency)


@pytest.mark.parametrize("text", ["", "free", "EUR 1 USD", "-3 EUR", "1.2.3x EUR"])
def test_parse_money_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_money(text)


@pytest.mark.parametrize("parse", [parse_xml, parse_xml_stdlib], ids=["default", "stdlib"])
@pytest.mark.parametrize("doc", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_xml_with_entities_is_refused(parse: object, doc: bytes) -> None:
    with pytest.raises(CatalogError, match="refused"):
        parse(doc)  # type: ignore[operator]


def test_stdlib_xml_reads_namespaces_like_elementtree() -> None:
    data = (FEEDS / "gmc.xml").read_bytes()
    root = parse_xml_stdlib(data)
    assert root.find("channel/item/{http://base.google.com/ns/1.0}id").text == "AF-X1"  # type: ignore[union-attr]


def test_gmc_xml_maps_every_attribute() -> None:
    result = parse_feed((FEEDS / "gmc.xml").read_bytes(), "gmc-xml")
    fryer = result.products[0]
    assert (fryer.id, fryer.price, fryer.sale_price, fryer.currency) == (
        "AF-X1",
        Decimal("89.99"),
        Decimal("79.99"),
        "EUR",
    )
    assert fryer.facts["capacity"].value == "5.5 litres"
    assert fryer.selling_points == [
        "Dishwasher-safe basket",
        "Eight presets",
        "Crisp fries with 80% less oil.",
    ]
    assert fryer.url == "https://shop.acme.example/p/af-x1"
    assert result.products[1].availability == "in_stock"  # "in stock" with a space


def test_shopify_one_product_per_variant() -> None:
    result = parse_feed((FEEDS / "shopify_products.json").read_bytes(), "shopify", currency="CHF")
    small, medium, tote = result.products
    assert small.title == "Merino Travel Hoodie – S / Navy"
    assert (small.price, small.sale_price, small.stock) == (Decimal("99.00"), Decimal("79.00"), 12)
    assert small.image == "https://cdn.shopify.example/hoodie-back.jpg"  # the variant's image
    assert small.facts["size"].value == "S" and small.currency == "CHF"
    assert medium.availability == "out_of_stock" and medium.sale_price is None
    assert tote.id == "shopify-90003" and tote.availability == "backorder" and tote.stock == 0
    assert small.selling_points == ["Soft merino wool that keeps you warm. Odour resistant"]


def test_unreadable_files() -> None:
    with pytest.raises(CatalogError):
        parse_feed(b"not json", "shopify")
    with pytest.raises(CatalogError):
        parse_feed(b"<rss><channel></channel></rss>", "gmc-xml")
    with pytest.raises(CatalogError):
        parse_feed(b"title\tprice\n", "gmc-tsv")
    with pytest.raises(CatalogError):
        parse_feed(b"\xff\xfe", "csv")


@pytest.mark.parametrize("name", ["catalog.json", "catalog.csv"])
def test_json_and_csv_keep_good_rows(name: str) -> None:
    fmt = name.rsplit(".", 1)[1]
    result = parse_feed((FEEDS / name).read_bytes(), fmt)  # type: ignore[arg-type]
    assert [p.id for p in result.products] == ["AF-X1", "KET-200", "MIX-1"]
    rows = sorted({int(p.row) for p in result.problems})
    assert rows == ([2, 3] if fmt == "json" else [4, 5])
