"""Destinations: allowed schemes and hosts; the stream key never comes back out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from avatarcast.db.events import record_event

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)

KEY = "live_sk_9f8e7d6c5b4a3210-SECRET"


def test_destination_lifecycle_never_shows_the_key(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c, h = api.client, api.auth("operator")
    bodies: list[str] = []
    r = c.post(
        "/v1/destinations",
        json={"name": "youtube", "url": "rtmp://8.8.8.8/live2", "stream_key": KEY},
        headers=h,
    )
    assert r.status_code == 201
    bodies.append(r.text)
    d = r.json()
    assert d["has_key"] is True and d["url"] == "rtmp://8.8.8.8/live2"
    api.problem(
        c.post("/v1/destinations", json={"name": "youtube", "url": "rtmp://8.8.8.8/x"}, headers=h),
        409,
    )
    bodies.append(c.get("/v1/destinations", headers=api.auth("supervisor")).text)
    bodies.append(c.get(f"/v1/destinations/{d['id']}", headers=h).text)
    r = c.patch(f"/v1/destinations/{d['id']}", json={"name": "yt-main"}, headers=h)
    assert r.json()["name"] == "yt-main" and r.json()["has_key"] is True
    bodies.append(r.text)
    # a bad update echoes nothing of the key either
    bad = c.patch(
        f"/v1/destinations/{d['id']}", json={"stream_key": KEY, "url": "http://x"}, headers=h
    )
    bodies.append(api.problem(bad, 422) and bad.text)
    r = c.patch(f"/v1/destinations/{d['id']}", json={"stream_key": None}, headers=h)
    assert r.json()["has_key"] is False
    bodies.append(r.text)
    bodies.append(c.get("/openapi.json").text)
    for body in bodies:
        assert KEY not in body
    assert KEY not in caplog.text
    with Session(api.engine) as s:  # it was stored (write-only), then cleared
        assert s.execute(text("SELECT stream_key FROM destinations")).scalar() is None
    assert c.delete(f"/v1/destinations/{d['id']}", headers=h).status_code == 204
    api.problem(c.get(f"/v1/destinations/{d['id']}", headers=h), 404)


def test_key_is_stored_and_password_in_url_redacted(api: Api) -> None:
    url = "rtmps://1.1.1.1:443/app?token=hunter2hunter2&latency=200"
    r = api.client.post(
        "/v1/destinations", json={"name": "q", "url": url, "stream_key": KEY}, headers=api.auth()
    )
    assert r.status_code == 201, r.text
    shown = r.json()["url"]
    assert "hunter2" not in shown and "latency=200" in shown
    r = api.client.post(
        "/v1/destinations",
        json={"name": "auth", "url": "rtmps://user:pw-secret@8.8.4.4/app"},
        headers=api.auth(),
    )
    assert r.json()["url"] == "rtmps://user:***@8.8.4.4/app" and r.json()["has_key"] is False
    with Session(api.engine) as s:  # stored encrypted with the server key (issue #12)
        stored = [k for k in s.execute(text("SELECT stream_key FROM destinations")).scalars() if k]
    assert KEY not in stored and KEY in [api.app.state.ctx.secrets.open(k) for k in stored]


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/live",
        "file:///etc/passwd",
        "rtmp://127.0.0.1/live",
        "rtmp://localhost/live",
        "rtmp://10.0.0.5/live",
        "rtmp://192.168.1.20:1935/live",
        "rtmp://[::1]/live",
        "rtmp://169.254.169.254/latest",
        "srt://8.8.8.8",
        "srt://8.8.8.8:9000?streamid=publish/abc",
        "rtmp://no-such-host.invalid/live",
        "rtmp://metadata.google.internal/live",
        "rtmp:///nohost",
    ],
)
def test_refused_urls(api: Api, url: str) -> None:
    body = api.problem(
        api.client.post("/v1/destinations", json={"name": "x", "url": url}, headers=api.auth()), 422
    )
    assert body["errors"][0]["field"] == "body.url"


def test_private_hosts_when_allowed(api_factory: Any) -> None:
    with api_factory(allow_private_destinations=True) as api:
        r = api.client.post(
            "/v1/destinations",
            json={"name": "lab", "url": "rtmp://127.0.0.1:1935/live"},
            headers=api.auth(),
        )
        assert r.status_code == 201


def test_destinations_roles_and_tenants(api: Api) -> None:
    c = api.client
    body = {"name": "tw", "url": "rtmp://8.8.8.8/app", "stream_key": KEY}
    api.problem(c.post("/v1/destinations", json=body, headers=api.auth("supervisor")), 403)
    api.problem(c.post("/v1/destinations", json=body, headers=api.auth("backend")), 403)
    did = c.post("/v1/destinations", json=body, headers=api.auth()).json()["id"]
    api.problem(c.get(f"/v1/destinations/{did}", headers=api.other), 404)
    api.problem(c.patch(f"/v1/destinations/{did}", json={"name": "mine"}, headers=api.other), 404)
    api.problem(c.delete(f"/v1/destinations/{did}", headers=api.other), 404)
    assert c.get("/v1/destinations", headers=api.other).json() == []
    # the same name is free in another tenant
    assert c.post("/v1/destinations", json=body, headers=api.other).status_code == 201


def test_stream_events_paginated_and_per_tenant(api: Api) -> None:
    with api.app.state.ctx.sessions() as s:
        for i in range(5):
            record_event(
                s,
                tenant_id=api.tenant_id,
                stream_id="s-1",
                kind="started" if i == 0 else "fps",
                detail={"n": i},
            )
        record_event(s, tenant_id=api.tenant_id, stream_id="s-2", kind="started")
        record_event(s, tenant_id=api.other_tenant_id, stream_id="s-1", kind="secret")
        s.commit()
    c, h = api.client, api.auth("supervisor")
    page = c.get("/v1/streams/s-1/events?limit=2", headers=h).json()
    got = [e["detail"]["n"] for e in page["items"]]
    while page["next_cursor"]:
        page = c.get(
            f"/v1/streams/s-1/events?limit=2&cursor={page['next_cursor']}", headers=h
        ).json()
        got += [e["detail"]["n"] for e in page["items"]]
    assert got == [0, 1, 2, 3, 4]
    only = c.get("/v1/streams/s-1/events?kind=started", headers=h).json()["items"]
    assert [e["kind"] for e in only] == ["started"] and only[0]["time"].endswith("Z")
    other = c.get("/v1/streams/s-1/events", headers=api.other).json()["items"]
    assert [e["kind"] for e in other] == ["secret"]
    assert c.get("/v1/streams/unknown/events", headers=h).json() == {
        "items": [],
        "next_cursor": None,
    }
    api.problem(c.get("/v1/streams/s-1/events"), 401)


def test_database_errors_do_not_log_the_stream_key(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing statement with the key bound is logged without its bound values."""

    def commit(self: Session) -> None:
        self.execute(text("SELECT * FROM no_such_table WHERE x = :k"), {"k": KEY})

    monkeypatch.setattr(Session, "commit", commit)
    body = {"name": "yt", "url": "rtmp://8.8.8.8/live2", "stream_key": KEY}
    r = api.client.post("/v1/destinations", json=body, headers=api.auth())
    api.problem(r, 500)
    assert "no_such_table" in caplog.text
    assert KEY not in caplog.text and KEY not in r.text
