"""Products: CRUD, pagination, tenant isolation, change notification, feed imports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from avatarcast.catalog.model import Product
from avatarcast.control import ProductChange
from avatarcast.control.schemas.products import ProductUpdate
from avatarcast.db import ProductRow

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
FEEDS = Path(__file__).parent / "data" / "feeds"


def product(pid: str = "AF-X1", **extra: Any) -> dict[str, Any]:
    return {"id": pid, "title": "Air fryer", "brand": "Acme", "price": "89.99", **extra}


def count(api: Api, tenant_id: str | None = None) -> int:
    with Session(api.engine) as s:
        query = select(func.count()).select_from(ProductRow)
        if tenant_id:
            query = query.where(ProductRow.tenant_id == tenant_id)
        return int(s.scalar(query) or 0)


def test_update_schema_has_every_product_field() -> None:
    assert set(ProductUpdate.model_fields) == set(Product.model_fields) - {"id"}


def test_crud(api: Api) -> None:
    c, h = api.client, api.auth("operator")
    r = c.post("/v1/products", json=product(facts={"capacity": "5.5 l"}), headers=h)
    assert r.status_code == 201
    body = r.json()
    assert body["facts"] == {"capacity": {"label": "capacity", "value": "5.5 l"}}
    assert Product.model_validate({k: v for k, v in body.items() if not k.endswith("_at")})
    api.problem(c.post("/v1/products", json=product(), headers=h), 409)
    assert c.get("/v1/products/AF-X1", headers=h).json()["price"] == "89.99"

    r = c.patch("/v1/products/AF-X1", json={"sale_price": "79.99", "stock": 4}, headers=h)
    assert r.status_code == 200 and r.json()["sale_price"] == "79.99" and r.json()["stock"] == 4
    assert r.json()["updated_at"] > body["updated_at"]
    bad = api.problem(c.patch("/v1/products/AF-X1", json={"price": "50"}, headers=h), 422)
    assert "sale_price must be lower" in bad["errors"][0]["message"]
    assert (
        c.patch("/v1/products/AF-X1", json={"sale_price": None}, headers=h).json()["sale_price"]
        is None
    )
    api.problem(c.patch("/v1/products/AF-X1", json={"brand": None}, headers=h), 422)

    r = c.put(
        "/v1/products/AF-X1", json=product(title={"en": "Fryer", "de": "Fritteuse"}), headers=h
    )
    assert r.status_code == 200 and r.json()["title"] == {"en": "Fryer", "de": "Fritteuse"}
    assert r.json()["stock"] is None  # PUT replaces the whole product
    r = c.put("/v1/products/KET-2", json=product("KET-2"), headers=h)
    assert r.status_code == 201
    api.problem(c.put("/v1/products/KET-3", json=product("KET-2"), headers=h), 422)

    assert c.delete("/v1/products/AF-X1", headers=h).status_code == 204
    api.problem(c.get("/v1/products/AF-X1", headers=h), 404)
    api.problem(c.delete("/v1/products/AF-X1", headers=h), 404)
    api.problem(c.patch("/v1/products/AF-X1", json={"stock": 1}, headers=h), 404)


def test_pagination_in_insertion_order(api: Api) -> None:
    ids = [f"P-{i:02d}" for i in range(7)]
    for pid in ids:
        assert (
            api.client.post("/v1/products", json=product(pid), headers=api.auth()).status_code
            == 201
        )
    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/products?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get(url, headers=api.auth()).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    api.problem(api.client.get("/v1/products?cursor=abc", headers=api.auth()), 422)


def test_tenant_isolation(api: Api) -> None:
    c = api.client
    assert c.post("/v1/products", json=product(), headers=api.auth()).status_code == 201
    # the same id in another tenant is another product
    assert (
        c.post("/v1/products", json=product(brand="Globex"), headers=api.other).status_code == 201
    )
    assert c.get("/v1/products/AF-X1", headers=api.other).json()["brand"] == "Globex"
    assert c.delete("/v1/products/AF-X1", headers=api.other).status_code == 204
    api.problem(c.get("/v1/products/AF-X1", headers=api.other), 404)
    api.problem(c.patch("/v1/products/AF-X1", json={"stock": 1}, headers=api.other), 404)
    assert c.get("/v1/products", headers=api.other).json()["items"] == []
    assert c.get("/v1/products/AF-X1", headers=api.auth()).json()["brand"] == "Acme"


def test_changes_reach_the_hub_after_commit(api: Api) -> None:
    hub = api.app.state.ctx.hub
    seen: list[ProductChange] = []
    others: list[ProductChange] = []
    committed_counts: list[int] = []

    def on_change(change: ProductChange) -> None:
        seen.append(change)
        committed_counts.append(count(api, api.tenant_id))  # visible from another connection

    unsubscribe = hub.subscribe(api.tenant_id, on_change)
    hub.subscribe(api.other_tenant_id, others.append)
    c, h = api.client, api.auth()
    c.post("/v1/products", json=product(), headers=h)
    c.patch("/v1/products/AF-X1", json={"price": "99.00"}, headers=h)
    c.put("/v1/products/AF-X1", json=product(price="99.00"), headers=h)  # no change: no event
    c.delete("/v1/products/AF-X1", headers=h)
    unsubscribe()
    c.post("/v1/products", json=product("LATE"), headers=h)
    assert [(ch.ids, ch.deleted) for ch in seen] == [
        (("AF-X1",), ()),
        (("AF-X1",), ()),
        (("AF-X1",), ("AF-X1",)),
    ]
    assert seen[1].upserted[0].price == 99
    assert committed_counts == [1, 1, 0]
    assert others == []


def _import(api: Api, name: str, fmt: str, role: str = "operator") -> Any:
    data = (FEEDS / name).read_bytes()
    return api.client.post(
        f"/v1/products/import?format={fmt}", content=data, headers=api.auth(role)
    )


IMPORTS = [
    ("gmc.xml", "gmc-xml", {"AF-X1", "KET-200", "MIX-1"}, {2: "price", 3: "brand"}),
    (
        "gmc.tsv",
        "gmc-tsv",
        {"AF-X1", "KET-200", "GRL-2"},
        {4: "sale_price", 5: "brand", 6: "availability"},
    ),
    (
        "shopify_products.json",
        "shopify",
        {"NW-HOOD-S-NAVY", "NW-HOOD-M-NAVY", "shopify-90003"},
        {"products[2].variants[0]": "price", "products[3].variants[0]": "brand"},
    ),
    ("catalog.csv", "csv", {"AF-X1", "KET-200", "MIX-1"}, {4: "id", 5: "price"}),
    ("catalog.json", "json", {"AF-X1", "KET-200", "MIX-1"}, {2: "", 3: "title"}),
]


@pytest.mark.parametrize(("name", "fmt", "ids", "bad"), IMPORTS, ids=[i[1] for i in IMPORTS])
def test_import_feeds(api: Api, name: str, fmt: str, ids: set[str], bad: dict[Any, str]) -> None:
    r = _import(api, name, fmt)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["imported"] == len(ids) and result["updated"] == 0
    assert {e["row"] for e in result["errors"]} == set(bad)
    for e in result["errors"]:
        assert bad[e["row"]] in e["field"] and e["reason"]
    listed = api.client.get("/v1/products", headers=api.auth()).json()["items"]
    assert {p["id"] for p in listed} == ids
    # importing again updates by id, nothing new
    again = _import(api, name, fmt, role="backend").json()
    assert again["imported"] == 0 and again["updated"] + again["unchanged"] == len(ids)
    assert count(api) == len(ids)


def test_reimport_updates_changed_prices(api: Api) -> None:
    assert _import(api, "gmc.xml", "gmc-xml").json()["imported"] == 3
    changed = (FEEDS / "gmc.xml").read_bytes().replace(b"249.00 EUR", b"229.00 EUR")
    r = api.client.post("/v1/products/import?format=gmc-xml", content=changed, headers=api.auth())
    assert r.json() | {"errors": []} == {"imported": 0, "updated": 1, "unchanged": 2, "errors": []}
    assert api.client.get("/v1/products/MIX-1", headers=api.auth()).json()["price"] == "229.00"


def test_import_unreadable_file_is_422(api: Api) -> None:
    r = api.client.post(
        "/v1/products/import?format=gmc-xml", content=b"<rss><oops", headers=api.auth()
    )
    assert api.problem(r, 422)["errors"][0]["row"] == "file"
    api.problem(
        api.client.post("/v1/products/import?format=xls", content=b"x", headers=api.auth()), 422
    )
    api.problem(_import(api, "gmc.xml", "gmc-xml", role="supervisor"), 403)
    bad_header = b"id,title,brand,price,colour\nA,t,b,1,red\n"
    r = api.client.post("/v1/products/import?format=csv", content=bad_header, headers=api.auth())
    assert api.problem(r, 422)["errors"][0]["row"] == 1
    assert count(api) == 0


def test_duplicate_ids_in_one_file_keep_the_first(api: Api) -> None:
    data = json.dumps([product("A", title="One"), product("A", title="Two")]).encode()
    r = api.client.post("/v1/products/import?format=json", content=data, headers=api.auth()).json()
    assert r["imported"] == 1 and r["errors"][0]["field"] == "id"
    assert api.client.get("/v1/products/A", headers=api.auth()).json()["title"] == "One"


@pytest.fixture
def failing_flush(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every import flushes after each row; the third flush fails like a lost connection."""
    from avatarcast.db import products as repo

    monkeypatch.setattr(repo, "FLUSH_EVERY", 1)
    calls: list[int] = []
    original = Session.flush

    def flush(self: Session, objects: Any = None) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("connection lost in the middle of the import")
        original(self, objects)

    monkeypatch.setattr(Session, "flush", flush)
    yield calls


def test_failure_mid_transaction_writes_nothing(
    api: Api, failing_flush: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    api.client.post("/v1/products", json=product("EXISTING"), headers=api.auth())
    failing_flush.clear()
    r = _import(api, "gmc.xml", "gmc-xml")
    api.problem(r, 500)
    assert len(failing_flush) >= 3  # two rows reached the database before the failure
    assert "connection lost" in caplog.text
    with Session(api.engine) as s:
        assert s.scalars(select(ProductRow.product_id)).all() == ["EXISTING"]


def test_products_survive_a_restart(api_factory: Any) -> None:
    with api_factory() as api:
        assert _import(api, "gmc.xml", "gmc-xml").status_code == 200
        keys = api.keys
    with api_factory() as api:  # a new app on the same database
        api.keys["admin"] = keys["admin"]
        r = api.client.get("/v1/products/AF-X1", headers=api.auth())
        assert r.status_code == 200 and r.json()["sale_price"] == "79.99"
        assert count(api) == 3
