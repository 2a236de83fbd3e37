"""Keys, roles, tenants, problems, limits: the rules every route shares."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from avatarcast.avatar.pack import list_packs
from avatarcast.control.routes.installed import describe_all
from avatarcast.db import ApiKey, make_engine

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)

AIRFRYER = {"id": "AF-X1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}


def test_health_ready_metrics(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json()["status"] == "ready"
    api.client.get("/v1/products", headers=api.auth())
    body = api.client.get("/metrics").text
    assert 'route="/v1/products"' in body and "avatarcast_http_request_duration_seconds" in body
    for gauge in ("avatarcast_stream_fps", "avatarcast_stream_encode_lag_seconds"):
        assert f"# TYPE {gauge} gauge" in body


def test_readyz_when_database_is_gone(api: Api) -> None:
    ctx = api.app.state.ctx
    original = ctx.engine
    ctx.engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    try:
        body = api.problem(api.client.get("/readyz"), 503)
        assert "database unreachable" in body["detail"]
    finally:
        ctx.engine.dispose()
        ctx.engine = original


@pytest.mark.parametrize(
    "header", [None, "Bearer nonsense", "Bearer avk_000000000000_x", "Basic a"]
)
def test_401_without_a_valid_key(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    body = api.problem(api.client.get("/v1/products", headers=headers), 401)
    assert body["instance"] == "/v1/products"


def test_401_with_a_wrong_secret_for_a_real_key_id(api: Api) -> None:
    key_id = api.keys["admin"].split("_")[1]
    forged = {"Authorization": f"Bearer avk_{key_id}_{'A' * 43}"}
    api.problem(api.client.get("/v1/products", headers=forged), 401)


def test_403_by_role(api: Api) -> None:
    c = api.client
    api.problem(c.get("/v1/tenants", headers=api.auth("operator")), 403)
    api.problem(c.post("/v1/products", json=AIRFRYER, headers=api.auth("supervisor")), 403)
    api.problem(c.get("/v1/destinations", headers=api.auth("backend")), 403)
    api.problem(
        c.post("/v1/keys", json={"name": "x", "role": "admin"}, headers=api.auth("operator")), 403
    )
    assert c.post("/v1/products", json=AIRFRYER, headers=api.auth("backend")).status_code == 201
    assert c.get("/v1/products/AF-X1", headers=api.auth("supervisor")).status_code == 200


def test_unknown_route_and_method_are_problems(api: Api) -> None:
    api.problem(api.client.get("/v1/nothing-here"), 404)
    body = api.problem(api.client.delete("/healthz"), 405)
    assert body["instance"] == "/healthz"


def test_422_lists_the_fields(api: Api) -> None:
    bad = {"id": "has space", "title": "", "brand": "Acme", "price": "-1", "nope": 1}
    body = api.problem(api.client.post("/v1/products", json=bad, headers=api.auth()), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"body.id", "body.title", "body.price", "body.nope"} <= fields
    body = api.problem(api.client.get("/v1/products?limit=0", headers=api.auth()), 422)
    assert body["errors"][0]["field"] == "query.limit"


def test_413_body_too_large(api: Api) -> None:
    huge = b"x" * (5 * 1024 * 1024 + 1)
    r = api.client.post(
        "/v1/products/import?format=csv", content=huge, headers=api.auth("operator")
    )
    assert api.problem(r, 413)["limit_bytes"] == 5 * 1024 * 1024

    def chunks() -> object:  # no Content-Length: counted while reading
        for _ in range(6):
            yield b"y" * (1024 * 1024)

    r = api.client.post("/v1/products/import?format=csv", content=chunks(), headers=api.auth())
    api.problem(r, 413)


def test_429_rate_limit_per_key_with_retry_after(api_factory: Any) -> None:
    with api_factory(rate_limit={"rate": 0.01, "burst": 3}) as api:
        for _ in range(3):
            assert api.client.get("/v1/products", headers=api.auth()).status_code == 200
        r = api.client.get("/v1/products", headers=api.auth())
        api.problem(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
        # another key has its own bucket
        assert api.client.get("/v1/products", headers=api.auth("operator")).status_code == 200


def test_key_shown_once_and_stored_hashed(api: Api) -> None:
    r = api.client.post("/v1/keys", json={"name": "ci", "role": "backend"}, headers=api.auth())
    assert r.status_code == 201
    created = r.json()
    token = created["key"]
    _, key_id, secret = token.split("_", 2)
    assert created["id"] == key_id and created["tenant_id"] == api.tenant_id
    with Session(api.engine) as s:
        row = s.get(ApiKey, key_id)
        assert row is not None
        assert (
            row.secret_hash
            == hmac.new(key_id.encode(), secret.encode(), hashlib.sha256).hexdigest()
        )
        dump = " ".join(str(v) for v in s.execute(text("SELECT * FROM api_keys")).all())
    assert secret not in dump
    listed = api.client.get("/v1/keys", headers=api.auth()).json()
    assert {k["id"] for k in listed} >= {key_id} and all("key" not in k for k in listed)
    assert token not in api.client.get("/v1/keys", headers=api.auth()).text
    assert (
        api.client.get("/v1/products", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


def test_revoke_key(api: Api) -> None:
    token = api.client.post(
        "/v1/keys", json={"name": "tmp", "role": "supervisor"}, headers=api.auth("operator")
    ).json()["key"]
    key_id = token.split("_")[1]
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.auth("operator")).status_code == 204
    api.problem(api.client.get("/v1/products", headers={"Authorization": f"Bearer {token}"}), 401)
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.auth()).status_code == 204
    api.problem(api.client.delete("/v1/keys/unknown", headers=api.auth()), 404)
    admin_id = api.keys["admin"].split("_")[1]
    api.problem(api.client.delete(f"/v1/keys/{admin_id}", headers=api.auth("operator")), 403)
    api.problem(api.client.delete(f"/v1/keys/{admin_id}", headers=api.other), 404)


def test_admin_makes_keys_for_other_tenants_operators_cannot(api: Api) -> None:
    body = {"name": "g", "role": "supervisor", "tenant_id": api.other_tenant_id}
    r = api.client.post("/v1/keys", json=body, headers=api.auth())
    assert r.status_code == 201 and r.json()["tenant_id"] == api.other_tenant_id
    api.problem(api.client.post("/v1/keys", json=body, headers=api.auth("operator")), 404)
    listed = api.client.get(f"/v1/keys?tenant_id={api.other_tenant_id}", headers=api.auth()).json()
    assert len(listed) == 2
    api.problem(api.client.get(f"/v1/keys?tenant_id={api.tenant_id}", headers=api.other), 404)


def test_tenants_crud(api: Api) -> None:
    c, h = api.client, api.auth()
    r = c.post("/v1/tenants", json={"name": "initech"}, headers=h)
    assert r.status_code == 201
    tid = r.json()["id"]
    api.problem(c.post("/v1/tenants", json={"name": "initech"}, headers=h), 409)
    api.problem(c.post("/v1/tenants", json={"name": ""}, headers=h), 422)
    assert c.get(f"/v1/tenants/{tid}", headers=h).json()["name"] == "initech"
    names = [t["name"] for t in c.get("/v1/tenants", headers=h).json()["items"]]
    assert names == ["acme", "globex", "initech"]
    page = c.get("/v1/tenants?limit=2", headers=h).json()
    assert len(page["items"]) == 2 and page["next_cursor"] == "2"
    rest = c.get(f"/v1/tenants?limit=2&cursor={page['next_cursor']}", headers=h).json()
    assert [t["name"] for t in rest["items"]] == ["initech"] and rest["next_cursor"] is None
    api.problem(c.delete(f"/v1/tenants/{api.tenant_id}", headers=h), 409)
    assert c.delete(f"/v1/tenants/{tid}", headers=h).status_code == 204
    api.problem(c.get(f"/v1/tenants/{tid}", headers=h), 404)


def test_deleting_a_tenant_removes_its_keys_and_products(api: Api) -> None:
    c = api.client
    assert c.post("/v1/products", json=AIRFRYER, headers=api.other).status_code == 201
    assert c.delete(f"/v1/tenants/{api.other_tenant_id}", headers=api.auth()).status_code == 204
    api.problem(c.get("/v1/products", headers=api.other), 401)
    with Session(api.engine) as s:
        assert s.scalars(select(ApiKey).where(ApiKey.tenant_id == api.other_tenant_id)).all() == []
        assert s.execute(text("SELECT count(*) FROM products")).scalar() == 0


def test_installed_avatars_and_voices_are_lists(api: Api) -> None:
    for path in ("/v1/avatars", "/v1/voices"):
        r = api.client.get(path, headers=api.auth("supervisor"))
        assert r.status_code == 200
        assert all(set(item) == {"name", "info"} for item in r.json())
        api.problem(api.client.get(path), 401)
    names = [a["name"] for a in api.client.get("/v1/avatars", headers=api.auth()).json()]
    assert names == [i.name for i in describe_all(list_packs())]
