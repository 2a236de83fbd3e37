"""Who changed access and schedules, and what a deleted tenant leaves running, through a real
``avatarcast serve`` process.

- key create/revoke, schedule create/update/delete and tenant create/delete are audited (OWASP
  API8:2023 Security Misconfiguration; the 2019 list's API10 Insufficient Logging);
- deleting a tenant stops its streams at once (OWASP API4:2023 Unrestricted Resource
  Consumption: a gone tenant must not keep a worker rendering).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from procs import children
from served import Served, live_stream, serve

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}


def _audit(c: httpx.Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = c.get("/v1/audit", params={"limit": 500, **params}, headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, httpx.Client]]:
    with serve(tmp_path_factory.mktemp("audit")) as s, s.client() as c:
        yield s, c


def test_api8_keys_schedules_and_tenants_are_audited(served: tuple[Served, httpx.Client]) -> None:
    """OWASP API8:2023: every change of who may do what, and of when a stream runs, leaves an
    audit entry naming the key that made it."""
    s, c = served
    op, admin = s.auth("operator"), s.auth("admin")
    op_key_id = s.keys["operator"].split("_")[1]
    made = c.post("/v1/keys", json={"name": "ci", "role": "backend"}, headers=op).json()
    assert c.delete(f"/v1/keys/{made['id']}", headers=op).status_code == 204
    assert c.delete(f"/v1/keys/{made['id']}", headers=op).status_code == 204  # twice: once
    assert c.post("/v1/products", json=FRYER, headers=op).status_code == 201
    sid = c.post("/v1/streams", json={"name": "night"}, headers=op).json()["id"]
    body = {
        "stream_id": sid,
        "name": "nights",
        "timezone": "Europe/Amsterdam",
        "days": ["fri"],
        "start": "22:00",
        "end": "06:00",
    }
    sched = c.post("/v1/schedules", json=body, headers=op).json()
    r = c.patch(f"/v1/schedules/{sched['id']}", json={"days": ["sat"]}, headers=op)
    assert r.status_code == 200
    assert c.delete(f"/v1/schedules/{sched['id']}", headers=op).status_code == 204

    tenant = _audit(c, op)
    kinds = [e["kind"] for e in tenant]
    assert kinds.count("key_created") == 1 and kinds.count("key_revoked") == 1, kinds
    created = next(e for e in tenant if e["kind"] == "key_created")
    assert created["detail"]["new_key_id"] == made["id"]
    assert created["detail"]["new_role"] == "backend"
    assert created["actor"] == f"key:{op_key_id}"
    assert "key" not in created["detail"] and made["key"] not in str(tenant)
    on_stream = _audit(c, op, stream_id=sid)
    changes = [(e["kind"], e["detail"]["days"]) for e in on_stream if "schedule" in e["kind"]]
    assert changes == [
        ("schedule_created", ["fri"]),
        ("schedule_updated", ["sat"]),
        ("schedule_deleted", ["sat"]),
    ]

    new = c.post("/v1/tenants", json={"name": "hooli"}, headers=admin).json()
    assert c.delete(f"/v1/tenants/{new['id']}", headers=admin).status_code == 204
    mine = [e for e in _audit(c, admin) if e["kind"].startswith("tenant_")]
    assert [(e["kind"], e["detail"]["tenant_id"]) for e in mine] == [
        ("tenant_created", new["id"]),
        ("tenant_deleted", new["id"]),
    ]


def _tenant_with_a_live_stream(c: httpx.Client, s: Served) -> tuple[str, str, set[int]]:
    admin = s.auth("admin")
    tenant = c.post("/v1/tenants", json={"name": "initech"}, headers=admin).json()
    key = {"name": "op", "role": "operator", "tenant_id": tenant["id"]}
    op = {"Authorization": f"Bearer {c.post('/v1/keys', json=key, headers=admin).json()['key']}"}
    before = set(children(s.proc.pid))
    sid, _ = live_stream(c, op, record=True)
    workers = set(children(s.proc.pid)) - before
    assert workers, "no worker process found"
    return tenant["id"], sid, workers


def test_api4_deleting_a_tenant_stops_its_streams_at_once(
    served: tuple[Served, httpx.Client],
) -> None:
    """OWASP API4:2023: the worker of a deleted tenant's live stream is gone within seconds."""
    s, c = served
    tenant_id, sid, workers = _tenant_with_a_live_stream(c, s)
    # the recording is the owner's only (OWASP API8:2023): folders 0700, files 0600
    folder = s.root / "recordings" / tenant_id / sid
    deadline = time.monotonic() + 60
    while not (folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))):
        assert time.monotonic() < deadline, "no recording written"
        time.sleep(0.2)
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert c.delete(f"/v1/tenants/{tenant_id}", headers=s.auth("admin")).status_code == 204
    deadline = time.monotonic() + 15
    while workers & set(children(s.proc.pid)):
        assert time.monotonic() < deadline, "the deleted tenant's worker still runs"
        time.sleep(0.2)
