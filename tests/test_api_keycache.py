"""Key rows cached for a few seconds: revocations still bite, and within a stated bound."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from avatarcast.control.keycache import KeyCache, KeyRecord
from avatarcast.db import ApiKey
from avatarcast.db.base import utcnow

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)


def _new_key(api: Api, role: str = "backend") -> tuple[str, dict[str, str]]:
    r = api.client.post("/v1/keys", json={"name": "cached", "role": role}, headers=api.auth())
    token = r.json()["key"]
    return token.split("_")[1], {"Authorization": f"Bearer {token}"}


def _revoke_in_database(api: Api, key_id: str) -> None:
    """As another API process or a hand edit would: this app is not told."""
    with Session(api.engine) as s:
        row = s.get(ApiKey, key_id)
        assert row is not None
        row.revoked_at = utcnow()
        s.commit()


def test_a_cached_key_is_refused_as_soon_as_it_is_revoked_here(api: Api) -> None:
    key_id, headers = _new_key(api)
    for _ in range(2):  # the second answer comes from the cache
        assert api.client.get("/v1/products", headers=headers).status_code == 200
    assert api.app.state.ctx.keys.get(key_id) is not None
    wrong = {"Authorization": headers["Authorization"][:-4] + "AAAA"}
    api.problem(api.client.get("/v1/products", headers=wrong), 401)  # secret checked each time
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.auth()).status_code == 204
    body = api.problem(api.client.get("/v1/products", headers=headers), 401)
    assert body["detail"] == "the API key was revoked"


def test_a_revocation_made_elsewhere_is_seen_within_the_cache_time(api: Api) -> None:
    now = [100.0]
    api.app.state.ctx.keys = KeyCache(ttl_s=2.0, clock=lambda: now[0])
    key_id, headers = _new_key(api)
    assert api.client.get("/v1/products", headers=headers).status_code == 200
    _revoke_in_database(api, key_id)
    now[0] += 1.9  # the stated bound: up to key_cache_s the cached row still admits it
    assert api.client.get("/v1/products", headers=headers).status_code == 200
    now[0] += 0.1
    api.problem(api.client.get("/v1/products", headers=headers), 401)


def test_no_cache_when_key_cache_s_is_zero(
    api_factory: Callable[..., AbstractContextManager[Api]],
) -> None:
    with api_factory(key_cache_s=0) as api:
        key_id, headers = _new_key(api)
        assert api.client.get("/v1/products", headers=headers).status_code == 200
        _revoke_in_database(api, key_id)
        api.problem(api.client.get("/v1/products", headers=headers), 401)


def test_a_row_read_before_a_forget_is_not_put_back() -> None:
    """A request that read the key just before a revocation committed must not cache it."""
    cache = KeyCache(ttl_s=60)
    record = KeyRecord(
        id="k1", tenant_id="t", role="admin", secret_hash="h", supervisor_id=None, revoked=False
    )
    seen = cache.generation
    cache.forget("k1")
    cache.put(record, generation=seen)
    assert cache.get("k1") is None
    cache.put(record, generation=cache.generation)
    assert cache.get("k1") == record
    cache.forget_tenant("t")
    assert cache.get("k1") is None


def test_the_cache_stays_bounded() -> None:
    now = [0.0]
    cache = KeyCache(ttl_s=1, max_entries=3, clock=lambda: now[0])
    for i in range(10):
        rec = KeyRecord(
            id=f"k{i}",
            tenant_id="t",
            role="admin",
            secret_hash="h",
            supervisor_id=None,
            revoked=False,
        )
        cache.put(rec, generation=cache.generation)
    assert sum(cache.get(f"k{i}") is not None for i in range(10)) <= 3
    assert cache.get("k9") is not None
    now[0] = 1.0
    assert cache.get("k9") is None
