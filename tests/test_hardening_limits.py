"""Resource limits, through a real ``avatarcast serve`` process (OWASP API4:2023 Unrestricted
Resource Consumption): per-tenant quotas answer 409 problems; stop, kill and mute are answered
while the API sheds every other request.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.models_streams import StreamRow
from served import serve

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
QUOTAS = {
    "AVATARCAST_QUOTAS__PRODUCTS": "3",
    "AVATARCAST_QUOTAS__SCHEDULES": "1",
    "AVATARCAST_QUOTAS__KEYS": "5",  # the four seeded keys of acme + one
    "AVATARCAST_QUOTAS__LIVE_STREAMS": "0",
}


LEFT_LIVE = "left-live-1"


def _left_live(database_url: str, tenant_id: str) -> None:
    """A stream meant to be live, with a supervisor on duty, as a restart finds it."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        session.add(
            StreamRow(
                id=LEFT_LIVE,
                tenant_id=tenant_id,
                name="left-live",
                avatar="default",
                voice="default",
                lang="en",
                writer="template",
                destination_ids=[],
                whep_token="t",
                desired_state="live",
                duty_supervisor_id="someone",
            )
        )
        session.commit()
    engine.dispose()


def test_api4_per_tenant_quotas_answer_409_problems(tmp_path: Path) -> None:
    """OWASP API4:2023: products (one by one, PUT and import), schedules, keys and streams on
    air stop at the tenant's quota with a problem naming it; nothing past it is written;
    another tenant has its own count; a restart does not bring back streams past it."""
    with serve(tmp_path, QUOTAS, prepare=_left_live) as s, s.client() as c:
        op = s.auth("operator")
        held = c.get(f"/v1/streams/{LEFT_LIVE}/events", headers=op).json()["items"]
        assert [e["detail"]["reason"] for e in held if e["kind"] == "held"] == [
            "the tenant's quota of 0 live streams is reached"
        ]

        def quota(r: httpx.Response, name: str) -> None:
            body = s.problem(r, 409)
            assert body["type"].endswith("/quota-exceeded") and body["quota"] == name, body
            assert f"AVATARCAST_QUOTAS__{name.upper()}" in body["detail"]

        for i in range(3):
            assert c.post("/v1/products", json={**FRYER, "id": f"p{i}"}, headers=op).is_success
        quota(c.post("/v1/products", json={**FRYER, "id": "p3"}, headers=op), "products")
        quota(c.put("/v1/products/p3", json={**FRYER, "id": "p3"}, headers=op), "products")
        catalog = "id,title,brand,price\np0,A,B,1\np9,A,B,1\n"
        quota(c.post("/v1/products/import?format=csv", content=catalog, headers=op), "products")
        assert c.put("/v1/products/p0", json={**FRYER, "id": "p0"}, headers=op).is_success
        ids = [p["id"] for p in c.get("/v1/products", headers=op).json()["items"]]
        assert ids == ["p0", "p1", "p2"]  # the refused import wrote nothing
        assert c.post("/v1/products", json={**FRYER, "id": "p3"}, headers=s.other).is_success

        sid = c.post("/v1/streams", json={"name": "night"}, headers=op).json()["id"]
        window = {"timezone": "UTC", "days": ["mon"], "start": "01:00", "end": "02:00"}
        first = {"stream_id": sid, "name": "a", **window}
        assert c.post("/v1/schedules", json=first, headers=op).status_code == 201
        quota(c.post("/v1/schedules", json={**first, "name": "b"}, headers=op), "schedules")

        assert c.post("/v1/keys", json={"name": "k", "role": "backend"}, headers=op).is_success
        quota(c.post("/v1/keys", json={"name": "k2", "role": "backend"}, headers=op), "keys")

        quota(c.post(f"/v1/streams/{sid}/start", headers=op), "live_streams")


def _catalog(n: int) -> str:
    rows = "".join(f"sku-{i},Product {i},Brand,{i % 90 + 9}.99\n" for i in range(n))
    return "id,title,brand,price\n" + rows


def test_api4_stop_kill_and_mute_are_answered_while_the_api_sheds(tmp_path: Path) -> None:
    """OWASP API4:2023: with one request slot, no waiting room, and that slot taken by a big
    import, other requests get 503 at once; stop, kill and mute reach their routes."""
    env = {
        "AVATARCAST_API__LOAD_SHEDDING__RUNNING": "1",
        "AVATARCAST_API__LOAD_SHEDDING__WAITING": "0",
        "AVATARCAST_API__BODY_LIMIT_BYTES": str(8 * 1024 * 1024),
        "AVATARCAST_QUOTAS__PRODUCTS": "100000",
    }
    with serve(tmp_path, env) as s, s.client() as c:
        op = s.auth("operator")
        assert c.post("/v1/products", json=FRYER, headers=op).is_success
        sid = c.post("/v1/streams", json={"name": "night"}, headers=op).json()["id"]
        big = _catalog(30_000)
        done: list[httpx.Response] = []
        sending = threading.Event()

        def send_import() -> None:
            for _ in range(20):  # shed itself when a probe held the slot: send again
                sending.set()
                r = c.post("/v1/products/import?format=csv", content=big, headers=op, timeout=120)
                if r.status_code != 503:
                    done.append(r)
                    return
                time.sleep(0.2)

        importer = threading.Thread(target=send_import)
        importer.start()
        try:
            sending.wait(10)
            time.sleep(0.3)
            deadline = time.monotonic() + 30
            while c.get("/v1/products", headers=op).status_code != 503:
                assert not done, "the import ended before the API was saturated"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            answered = {
                path: c.post(f"/v1/streams/{sid}/{path}", headers=op).status_code
                for path in ("stop", "kill", "mute")
            }
            assert not done, "the import ended before the probes: make it bigger"
            assert c.get("/v1/products", headers=op).status_code == 503  # still saturated
        finally:
            importer.join(120)
        assert answered == {"stop": 409, "kill": 409, "mute": 409}  # not on air, not shed
        assert done and done[0].status_code == 200, done
