"""The console's parts without a browser: the pinned htmx file, sessions, the event bus, the
schedule week grid across DST, and the API routes the console needed (on SQLite and
PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from avatarcast.console.bus import EventBus
from avatarcast.console.pages import schedule_view
from avatarcast.console.sessions import SessionStore
from avatarcast.control import create_key, upgrade_database
from avatarcast.db import ConsoleSessionRow, make_engine, make_sessionmaker
from avatarcast.db.models_streams import ScheduleRow
from avatarcast.runner.base import StreamEvent

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager as ContextManager

    from conftest_api import Api

pytest_plugins = ("conftest_api",)

STATIC = Path(__file__).resolve().parents[1] / "src" / "avatarcast" / "console" / "static"
#: htmx.org 2.0.8 from the npm registry (``npm pack htmx.org@2.0.8``, dist/htmx.min.js)
HTMX_SHA256 = "22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313"


def test_htmx_is_the_pinned_file() -> None:
    data = (STATIC / "htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert b'version:"2.0.8"' in data


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_are_stored_hashed_in_the_database_and_end_when_idle_or_old(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    db = make_sessionmaker(engine)
    tenant, token = create_key(db, tenant_name="acme", role="operator")
    key_id = token.split("_")[1]
    clock = Clock()
    store = SessionStore(db, idle_s=60, absolute_s=300, cache_s=0, clock=clock)
    sid, session = store.open(key_id=key_id, tenant_id=tenant, role="operator", supervisor_id=None)
    with db() as s:
        (row,) = s.scalars(select(ConsoleSessionRow)).all()
    assert row.id_hash == hashlib.sha256(sid.encode()).hexdigest() and sid not in repr(row)
    assert row.csrf == session.csrf and len(session.csrf) >= 40 and row.key_id == key_id
    assert store.get(sid) == session and store.get("forged") is None
    # another API process, or this one after a restart, knows the session
    other = SessionStore(db, idle_s=60, absolute_s=300, cache_s=0, clock=clock)
    assert other.get(sid, touch=False) == session
    clock.now += 59
    assert store.get(sid) is not None  # touched: idle counts from here, in the database
    clock.now += 50
    assert other.get(sid) is not None
    clock.now += 61
    assert store.get(sid) is None  # idle too long, and deleted
    assert other.get(sid) is None and store.count() == 0
    sid, _ = store.open(key_id=key_id, tenant_id=tenant, role="operator", supervisor_id=None)
    for _ in range(6):
        clock.now += 50
        assert store.get(sid) is not None
    clock.now += 1
    assert store.get(sid) is None  # 301 s after sign-in, however active
    a, _ = store.open(key_id=key_id, tenant_id=tenant, role="operator", supervisor_id=None)
    b, _ = store.open(key_id=key_id, tenant_id=tenant, role="operator", supervisor_id=None)
    assert store.close_key(key_id) == 2 and store.get(a) is None and store.get(b) is None
    # ended sessions nobody asks about again are swept away
    for _ in range(3):
        store.open(key_id=key_id, tenant_id=tenant, role="operator", supervisor_id=None)
    live, _ = store.open(key_id=key_id, tenant_id=tenant, role="operator", supervisor_id=None)
    clock.now += 40
    assert store.get(live) is not None
    clock.now += 30
    assert store.count() == 4 and store.sweep() == 3 and store.count() == 1
    assert store.get(live) is not None
    engine.dispose()


async def test_bus_numbers_events_per_tenant_and_wakes_waiters_from_threads() -> None:
    import asyncio

    bus = EventBus(keep=3)
    bus.bind(asyncio.get_running_loop())
    bus.on_stream_event(StreamEvent(stream_id="s1", tenant_id="t1", kind="line", detail={"x": 1}))
    bus.on_stream_event(StreamEvent(stream_id="s1", tenant_id="t1", kind="crashed"))
    bus.on_stream_event(StreamEvent(stream_id="s2", tenant_id="t2", kind="chat"))
    mine = bus.after("t1", 0)
    assert [(e.name, e.id) for e in mine] == [("line", 1), ("alert", 2)]
    assert bus.after("t1", 1)[0].data["kind"] == "crashed" and bus.after("t2", 0)[0].name == "chat"
    started = time.monotonic()
    timer = threading.Timer(0.2, bus.publish, args=("t1", "s1", "event", {"kind": "x"}))
    timer.start()
    await bus.wait(5)
    assert time.monotonic() - started < 2
    assert [e.id for e in bus.after("t1", 0)] == [2, 4]  # keep=3: the oldest went
    timer.join()


def _row(**kw: object) -> ScheduleRow:
    fields = {
        "id": "s1",
        "tenant_id": "t",
        "stream_id": "st",
        "name": "Nights",
        "timezone": "Europe/Amsterdam",
        "days": [0, 1, 2, 3, 4, 5, 6],
        "start_time": "22:00",
        "end_time": "06:00",
        "enabled": True,
    }
    fields.update(kw)
    return ScheduleRow(**fields)


def test_the_week_grid_is_in_the_schedule_zone_across_dst() -> None:
    # the week of 23 March 2026: Amsterdam moves to summer time at 02:00 on Sunday the 29th
    view = schedule_view(_row(), {"st": "demo"}, now=datetime(2026, 3, 25, 12, tzinfo=UTC))
    blocks = {b["day"]: b for b in view["blocks"]}
    assert sorted(blocks) == list(range(7))
    assert all(b["start_h"] == 22 for b in blocks.values())  # 22:00 local every night
    assert blocks[5]["hours"] == 7  # Saturday night loses an hour
    assert [blocks[d]["hours"] for d in (0, 1, 2, 3, 4, 6)] == [8] * 6
    assert "CEST" in blocks[5]["label"] and "CET" in blocks[4]["label"]
    tails = {t["day"]: t["hours"] for t in view["tails"]}  # after midnight, the next day's row
    assert tails == {d: 6 for d in range(7)}  # to 06:00 on the clock, every morning
    autumn = schedule_view(
        _row(timezone="America/New_York", days=[5], start_time="23:30", end_time="05:30"),
        {},
        now=datetime(2026, 10, 30, 12, tzinfo=UTC),  # US clocks go back on 1 November
    )
    (night,) = autumn["blocks"]
    assert (night["day"], night["start_h"], night["hours"]) == (5, 23.5, 7)
    assert autumn["runs"][0].startswith("Sat 31 Oct 23:30")


# --- the API routes the console needed ------------------------------------------------------


def _stream(api: Api, **extra: object) -> str:
    body = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
    assert api.client.post("/v1/products", json=body, headers=api.auth()).status_code == 201
    r = api.client.post("/v1/streams", json={"name": "s", **extra}, headers=api.auth())
    assert r.status_code == 201, r.text
    stream_id: str = r.json()["id"]
    return stream_id


def test_chat_takes_one_message_pin_and_block_exist_supervisors_get_the_viewer_token(
    api: Api,
) -> None:
    sid = _stream(api)
    one = {"viewer_id": "v1", "name": "Ada", "text": "Is it big?"}
    r = api.client.post(f"/v1/streams/{sid}/chat", json=one, headers=api.auth("backend"))
    assert api.problem(r, 409)["detail"].startswith("chat not taken")  # parsed, then not on air
    r = api.client.post(f"/v1/streams/{sid}/chat", json=[one, one], headers=api.auth("backend"))
    assert r.status_code == 409
    r = api.client.post(f"/v1/streams/{sid}/chat", json="hi", headers=api.auth("backend"))
    api.problem(r, 422)

    _, sup = api.supervisor()
    r = api.client.post(f"/v1/streams/{sid}/products/AF-1/pin", headers=sup)
    assert "not on air" in api.problem(r, 409)["detail"]
    r = api.client.post(f"/v1/streams/{sid}/products/AF-1/float", headers=sup)
    api.problem(r, 422)

    r = api.client.post(f"/v1/streams/{sid}/chat/m7/block", headers=sup)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "stream_id": sid,
        "message_id": "m7",
        "rejected_answers": [],
        "withdrawn_answers": [],
    }
    api.problem(
        api.client.post(f"/v1/streams/{sid}/chat/m7/block", headers=api.auth("backend")), 403
    )
    audit = api.client.get(f"/v1/audit?stream_id={sid}", headers=api.auth()).json()["items"]
    blocked = [e for e in audit if e["kind"] == "chat_message_blocked"]
    assert blocked and blocked[0]["detail"]["message_id"] == "m7"

    token = api.client.get(f"/v1/streams/{sid}", headers=api.auth()).json()["whep_token"]
    assert token and api.client.get(f"/v1/streams/{sid}", headers=sup).json()["whep_token"] == token
    backend = api.client.get(f"/v1/streams/{sid}", headers=api.auth("backend")).json()
    assert backend["whep_token"] is None

    spec = api.client.get("/openapi.json").json()
    assert "/v1/streams/{stream_id}/chat/{message_id}/block" in spec["paths"]
    chat = spec["paths"]["/v1/streams/{stream_id}/chat"]["post"]["requestBody"]
    assert "anyOf" in str(chat["content"]["application/json"]["schema"])
    assert not any(p.startswith("/console") for p in spec["paths"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_console_pages_need_a_session(api_factory: Callable[..., ContextManager[Api]]) -> None:
    with api_factory(console=True) as api:
        _pages_need_a_session(api)


def _pages_need_a_session(api: Api) -> None:
    r = api.client.get("/console/streams", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")
    r = api.client.post("/console/streams/x/state/start", follow_redirects=False)
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/console/sign-in")
    r = api.client.get("/console/sign-in")
    assert r.status_code == 200 and 'for="api-key">API key' in r.text
    assert api.client.get("/console/static/htmx.min.js").status_code == 200


def test_a_stream_nobody_has_beaten_for_starts_on_the_slate() -> None:
    from avatarcast.control.supervision import SupervisionWatch

    clock = Clock()
    watch = SupervisionWatch(timeout_s=60, stop_after_s=300, clock=clock)
    watch.arm("waiting", waiting=True)
    watch.arm("beaten")
    assert [(a.stream_id, a.kind) for a in watch.tick()] == [("waiting", "safe_mode_entered")]
    clock.now += 5
    left = watch.beat("waiting")  # the first heartbeat puts it on air
    assert left is not None and left.kind == "safe_mode_left"
    assert watch.tick() == [] and not watch.in_safe_mode("waiting")


async def test_pending_chat_fates_are_followed_until_they_settle() -> None:
    from avatarcast.console.fates import FateWatch
    from avatarcast.runner.base import CommandFailed

    clock = Clock()
    ledger: dict[str, dict[str, str]] = {}
    asked: list[str] = []

    async def request(stream_id: str, command: dict[str, str], wait_s: float) -> object:
        asked.append(command["message_id"])
        if stream_id == "gone":
            raise CommandFailed("stream gone is not running", retryable=False)
        return ledger.get(command["message_id"])

    bus = EventBus()
    watch = FateWatch(bus=bus, request=request, limit=3, clock=clock)

    def chat(stream_id: str, *fates: tuple[str, str]) -> StreamEvent:
        detail = {"fates": [{"id": i, "outcome": o, "text": "q"} for i, o in fates]}
        return StreamEvent(stream_id=stream_id, tenant_id="t1", kind="chat", detail=detail)

    watch.on_stream_event(chat("s1", ("m1", "pending"), ("m2", "answered"), ("m3", "pending")))
    watch.on_stream_event(chat("gone", ("g1", "pending")))
    assert watch.following == 3  # answered at once: nothing to follow
    ledger["m1"] = {"id": "m1", "outcome": "pending", "text": "q"}
    ledger["m3"] = {"id": "m3", "outcome": "pending", "text": "q"}
    assert await watch.check() == 0 and bus.after("t1", 0) == []
    assert watch.following == 2  # the stream that is gone is forgotten
    ledger["m1"] = {"id": "m1", "outcome": "answered", "text": "q", "answer": "Five litres."}
    assert await watch.check() == 1
    (event,) = bus.after("t1", 0)
    assert (event.name, event.stream_id) == ("chat", "s1")
    assert event.data["fates"] == [ledger["m1"]]
    assert watch.following == 1  # m3 is still pending

    for i in range(5):  # bounded: the oldest are dropped
        watch.on_stream_event(chat("s1", (f"x{i}", "pending")))
    assert watch.following == 3
    watch.on_stream_event(StreamEvent(stream_id="s1", tenant_id="t1", kind="stopped", detail={}))
    assert watch.following == 0
    watch.on_stream_event(chat("s1", ("late", "pending")))
    clock.now += 601  # followed at most keep_s
    asked.clear()
    assert await watch.check() == 0 and watch.following == 0 and asked == []


def test_a_console_session_survives_a_restart_and_works_in_another_process(
    tmp_path: Path,
) -> None:
    """Two apps on one database stand for two API processes, or one before and after a
    restart: a session opened through one is good in the other, and signing out in the second
    ends it in the first."""
    from fastapi.testclient import TestClient

    from avatarcast.server import create_server_app
    from avatarcast.settings import Settings

    url = f"sqlite:///{tmp_path / 'two.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    _, token = create_key(make_sessionmaker(engine), tenant_name="acme", role="operator")
    engine.dispose()
    settings = Settings(database_url=url)
    base, origin = "http://127.0.0.1", {"Origin": "http://127.0.0.1"}
    with TestClient(create_server_app(settings), base_url=base) as first:
        r = first.post("/console/sign-in", data={"api_key": token}, headers=origin)
        assert r.status_code == 200 and r.url.path == "/console/streams", r.text
        cookie = first.cookies["avatarcast_console"]
    with (
        TestClient(create_server_app(settings), base_url=base) as second,
        TestClient(create_server_app(settings), base_url=base) as third,
    ):
        second.cookies.set("avatarcast_console", cookie)
        page = second.get("/console/streams")
        assert page.status_code == 200 and "<h1>Streams</h1>" in page.text
        csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
        third.cookies.set("avatarcast_console", cookie)
        assert third.get("/console/streams").status_code == 200
        out = second.post("/console/sign-out", data={"csrf": csrf}, headers=origin)
        assert out.url.path == "/console/sign-in"
        time.sleep(1.1)  # the third process's memory of the session (SessionStore.cache_s)
        gone = third.get("/console/streams", follow_redirects=False)
        assert gone.status_code == 303 and "/console/sign-in" in gone.headers["location"]
