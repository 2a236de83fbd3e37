"""Supervision that means something, through a real ``avatarcast serve`` process.

- an operator key alone is not a supervisor (OWASP API5:2023 Broken Function Level
  Authorization): it may stop, kill and mute, but not go on duty or speak;
- no supervisor on duty, nothing on air (OWASP API6:2023 Unrestricted Access to Sensitive
  Business Flows): schedule windows and streams restored after a restart wait for one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.base import utcnow
from avatarcast.db.models import ProductRow
from avatarcast.db.models_streams import StreamRow
from served import Served, serve

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _until(ok: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = ok()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.2)


def _events(c: httpx.Client, s: Served, sid: str) -> list[dict[str, Any]]:
    r = c.get(f"/v1/streams/{sid}/events", params={"limit": 500}, headers=s.auth("operator"))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _supervisor(c: httpx.Client, s: Served, role: str) -> tuple[str, dict[str, str]]:
    """A supervisor record and a ``role`` key linked to it."""
    person = {"full_name": "Ana Lopez", "contact": "ana@example.com", "reference": "P-1"}
    r = c.post("/v1/supervisors", json=person, headers=s.auth("operator"))
    assert r.status_code == 201, r.text
    sup_id = r.json()["id"]
    r = c.post(
        "/v1/keys",
        json={"name": "k", "role": role, "supervisor_id": sup_id},
        headers=s.auth("operator"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["supervisor_id"] == sup_id
    return sup_id, {"Authorization": f"Bearer {r.json()['key']}"}


#: the served API's scheduler tick (5 s by default)
TICK_S = 1.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, httpx.Client]]:
    # a scheduler tick each second, not 5: a held window is seen, and seen held again, sooner
    env = {"AVATARCAST_SCHEDULER__TICK_S": str(TICK_S)}
    with serve(tmp_path_factory.mktemp("supervision"), env) as s, s.client() as c:
        yield s, c


def test_api5_an_operator_key_alone_cannot_act_as_the_supervisor(
    served: tuple[Served, httpx.Client],
) -> None:
    """OWASP API5:2023: duty, heartbeats, corrections and answer approvals need a key linked
    to a supervisor record; an operator may still stop, kill and mute."""
    s, c = served
    op = s.auth("operator")
    assert c.post("/v1/products", json=FRYER, headers=op).status_code == 201
    sid = c.post("/v1/streams", json={"name": "night"}, headers=op).json()["id"]
    sup_id, _ = _supervisor(c, s, "supervisor")
    for method, path, body in (
        ("POST", "supervisor/duty", {"supervisor_id": sup_id}),
        ("POST", "supervisor/heartbeat", None),
        ("POST", "say", {"text": "hello"}),
        ("POST", "unmute", None),
        ("POST", "products/AF-1/resume", None),
        ("GET", "answers/pending", None),
    ):
        r = c.request(method, f"/v1/streams/{sid}/{path}", json=body, headers=op)
        problem = s.problem(r, 403)
        assert "supervisor" in problem["detail"], (path, problem)
    # the operator's safety actions pass the role check (409: the stream is not on air)
    for path in ("kill", "mute", "stop"):
        assert c.post(f"/v1/streams/{sid}/{path}", headers=op).status_code == 409, path
    # reading what happened stays open to operators
    assert c.get(f"/v1/streams/{sid}/events", headers=op).status_code == 200
    assert c.get("/v1/audit", headers=op).status_code == 200
    # an operator key linked to a supervisor record is both (the demo's key)
    linked_id, linked = _supervisor(c, s, "operator")
    duty = f"/v1/streams/{sid}/supervisor/duty"
    r = c.post(duty, json={"supervisor_id": linked_id}, headers=linked)
    assert r.status_code == 200 and r.json()["supervisor_id"] == linked_id, r.text
    assert c.post("/v1/products", json={**FRYER, "id": "AF-2"}, headers=linked).is_success
    # a backend key cannot be linked to a person
    r = c.post(
        "/v1/keys",
        json={"name": "b", "role": "backend", "supervisor_id": sup_id},
        headers=op,
    )
    assert s.problem(r, 422)["errors"][0]["field"] == "body.supervisor_id"


def _open_window(now: datetime) -> dict[str, Any]:
    """A daily window (UTC) open now: one hour either side."""
    return {
        "timezone": "UTC",
        "days": ALL_DAYS,
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
    }


def test_api6_a_schedule_window_waits_for_a_supervisor_on_duty(
    served: tuple[Served, httpx.Client],
) -> None:
    """OWASP API6:2023: a window that opens with nobody on duty leaves the stream off air,
    says why in an event, and opens when a supervisor goes on duty."""
    s, c = served
    op = s.auth("operator")
    c.post("/v1/products", json={**FRYER, "id": "AF-9"}, headers=op)  # 409 when run after
    sid = c.post("/v1/streams", json={"name": "scheduled"}, headers=op).json()["id"]
    body = {"stream_id": sid, "name": "nights", **_open_window(datetime.now(UTC))}
    assert c.post("/v1/schedules", json=body, headers=op).status_code == 201

    held = _until(
        lambda: [e for e in _events(c, s, sid) if e["kind"] == "schedule-held"],
        15,
        "schedule-held event",
    )
    assert held[0]["detail"]["reason"] == "no supervisor on duty"
    time.sleep(2.5 * TICK_S)  # two more scheduler ticks: still held, and reported once
    stream = c.get(f"/v1/streams/{sid}", headers=op).json()
    assert stream["desired_state"] == "stopped" and stream["status"]["state"] == "stopped"
    kinds = [e["kind"] for e in _events(c, s, sid)]
    assert kinds.count("schedule-held") == 1 and "schedule-start" not in kinds

    sup_id, sup = _supervisor(c, s, "supervisor")
    r = c.post(f"/v1/streams/{sid}/supervisor/duty", json={"supervisor_id": sup_id}, headers=sup)
    assert r.status_code == 200, r.text
    # going on duty retries the window at once
    started = [e for e in _events(c, s, sid) if e["kind"] == "schedule-start"]
    assert len(started) == 1, _events(c, s, sid)
    assert c.get(f"/v1/streams/{sid}", headers=op).json()["desired_state"] == "live"
    assert c.post(f"/v1/streams/{sid}/stop", headers=op).status_code == 200


def _seed_live_stream(database_url: str, tenant_id: str) -> str:
    """A stream left ``live`` in the database with nobody on duty (as after a hand edit or
    an older version), with one product."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            session.add(ProductRow(tenant_id=tenant_id, product_id="AF-1", payload=FRYER))
            row = StreamRow(
                id=secrets.token_hex(8),
                tenant_id=tenant_id,
                name="left-live",
                avatar="default",
                voice="default",
                lang="en",
                writer="template",
                destination_ids=[],
                whep_token=secrets.token_urlsafe(24),
                desired_state="live",
                created_at=utcnow(),
            )
            session.add(row)
            session.commit()
            return row.id
    finally:
        engine.dispose()


def test_api6_restore_after_a_restart_needs_a_supervisor_on_duty(tmp_path: Path) -> None:
    """OWASP API6:2023: a stream that should be live but has nobody on duty is not started
    by the server's restore; an event says why, and it starts once someone takes duty."""
    with serve(tmp_path / "first") as first:
        tenant_id, database_url = first.tenant_id, first.database_url
    sid = _seed_live_stream(database_url, tenant_id)
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(StreamRow.desired_state).where(StreamRow.id == sid)) == "live"
    engine.dispose()

    with serve(tmp_path / "first", seeded=False) as s, s.client() as c:
        s.keys = first.keys
        op = s.auth("operator")
        held = [e for e in _events(c, s, sid) if e["kind"] == "held"]
        assert held and held[0]["detail"]["reason"] == "no supervisor on duty", held
        stream = c.get(f"/v1/streams/{sid}", headers=op).json()
        assert stream["status"]["state"] == "stopped" and stream["desired_state"] == "live"

        sup_id, sup = _supervisor(c, s, "supervisor")
        r = c.post(
            f"/v1/streams/{sid}/supervisor/duty", json={"supervisor_id": sup_id}, headers=sup
        )
        assert r.status_code == 200, r.text
        state = _until(
            lambda: (
                c.get(f"/v1/streams/{sid}", headers=op).json()["status"]["state"]
                in ("starting", "live", "safe_mode")
            ),
            20,
            "the stream starts once a supervisor is on duty",
        )
        assert state
        assert c.post(f"/v1/streams/{sid}/stop", headers=op).status_code == 200


def test_api5_the_demo_key_operates_and_supervises_its_own_tenant(tmp_path: Path) -> None:
    """OWASP API5:2023: the one key the demo prints is an operator key linked to the demo
    supervisor, who is on duty, so the demo stream may go on air; the key sends heartbeats,
    and it reaches nothing outside the demo tenant."""
    from avatarcast.control.demo import DEMO_CATALOG, prepare_demo
    from avatarcast.db.models import ApiKey
    from avatarcast.settings import Settings

    database_url = f"sqlite:///{tmp_path / 'var' / 'avatarcast.db'}"
    demo = prepare_demo(Settings(database_url=database_url), catalog=DEMO_CATALOG)
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        key = session.get(ApiKey, demo.api_key.split("_")[1])
        stream = session.get(StreamRow, demo.stream_id)
        assert key is not None and stream is not None
        assert key.role == "operator" and key.supervisor_id is not None
        assert stream.duty_supervisor_id == key.supervisor_id
        assert stream.desired_state == "live"
    engine.dispose()
    with serve(tmp_path, seeded=False) as s, s.client() as c:
        me = {"Authorization": f"Bearer {demo.api_key}"}

        def slate() -> Any:
            return c.get(f"/v1/streams/{demo.stream_id}", headers=me).json()["status"]["slate"]

        # nobody has watched yet: the demo waits on a "waiting for a supervisor" slate
        _until(lambda: slate() == "Waiting for a supervisor", 40, "no waiting slate")
        beat = c.post(f"/v1/streams/{demo.stream_id}/supervisor/heartbeat", headers=me)
        assert beat.status_code == 200, beat.text
        _until(lambda: slate() is None, 10, "the first heartbeat did not put it on air")
        held = [
            e["kind"]
            for e in c.get(f"/v1/streams/{demo.stream_id}/events", headers=me).json()["items"]
        ]
        assert "held" not in held  # on duty: restore started it
        assert c.get("/v1/tenants", headers=me).status_code == 403
        assert c.post(f"/v1/streams/{demo.stream_id}/stop", headers=me).status_code == 200
