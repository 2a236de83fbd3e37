"""Streams through the API, on SQLite and PostgreSQL, with real worker processes.

Tests that go live need ``avatarcast.pipeline.live``: each start runs a real worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
#: its apps start streams: workers forked from a zygote, as deployed (conftest_api)
WORKER_ZYGOTE = True
pytestmark = pytest.mark.timeout(180)

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}


def add_product(api: Api) -> None:
    r = api.client.post("/v1/products", json=FRYER, headers=api.auth("operator"))
    assert r.status_code == 201, r.text


def create(api: Api, role: str = "operator", **body: Any) -> Any:
    return api.client.post("/v1/streams", json={"name": "night", **body}, headers=api.auth(role))


def wait_status(
    api: Api, stream_id: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """Poll the stream's status until ``ok``; the default is a worker's start-up (its imports
    and first second on air), a wait and not a check: 25 s ran out at load average 26."""
    deadline = time.monotonic() + timeout
    while True:
        body = api.client.get(f"/v1/streams/{stream_id}", headers=api.auth("supervisor")).json()
        if ok(body["status"]):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"stream status not reached in {timeout} s: {body['status']}")
        time.sleep(0.1)


def on_air(status: dict[str, Any]) -> bool:
    return status["state"] == "live" and (status["frames"] or 0) > 25 and (status["fps"] or 0) > 0


def test_create_validates_names_and_fields(api: Api) -> None:
    c = api.client
    for body, field in [
        ({"avatar": "nobody"}, "body.avatar"),
        ({"voice": "nobody"}, "body.voice"),
        ({"lang": "xx"}, "body.lang"),
        ({"lang": "nl", "voice": "espeak-en-f"}, "body.voice"),
        ({"destination_ids": ["nope"]}, "body.destination_ids"),
        ({"writer": "poet"}, "body.writer"),
        ({"writer": "llm"}, "body.writer"),  # no model endpoint configured
    ]:
        bad = api.problem(create(api, **body), 422)
        assert [e["field"] for e in bad["errors"]] == [field], body
    r = create(api, avatar="mila", lang="nl", product_ids=["AF-1"])
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["avatar"], made["voice"], made["lang"]) == ("mila", "espeak-nl-f", "nl")
    assert made["desired_state"] == "stopped" and made["status"]["state"] == "stopped"
    assert made["whep_token"] and made["whep_url"] == f"/v1/streams/{made['id']}/whep"
    api.problem(create(api), 409)
    listed = c.get("/v1/streams", headers=api.auth("backend")).json()["items"]
    assert [s["id"] for s in listed] == [made["id"]]
    assert listed[0]["whep_token"] is None  # viewer tokens: operators, admins, supervisors only


def test_auth_roles_and_tenants(api: Api) -> None:
    c = api.client
    api.problem(c.get("/v1/streams"), 401)
    api.problem(create(api, role="supervisor"), 403)
    api.problem(create(api, role="backend"), 403)
    sid = create(api).json()["id"]
    api.problem(c.post(f"/v1/streams/{sid}/start", headers=api.auth("supervisor")), 403)
    api.problem(c.post(f"/v1/streams/{sid}/pause", headers=api.auth("backend")), 403)
    api.problem(c.delete(f"/v1/streams/{sid}", headers=api.auth("backend")), 403)
    # another tenant sees nothing and can touch nothing
    api.problem(c.get(f"/v1/streams/{sid}", headers=api.other), 404)
    api.problem(c.post(f"/v1/streams/{sid}/start", headers=api.other), 404)
    api.problem(c.delete(f"/v1/streams/{sid}", headers=api.other), 404)
    assert c.get("/v1/streams", headers=api.other).json()["items"] == []
    assert c.get(f"/v1/streams/{sid}/events", headers=api.other).json()["items"] == []
    api.problem(c.get("/v1/streams/nope", headers=api.auth()), 404)
    assert c.delete(f"/v1/streams/{sid}", headers=api.auth("operator")).status_code == 204
    api.problem(c.get(f"/v1/streams/{sid}", headers=api.auth()), 404)


def test_transitions(api: Api) -> None:
    c = api.client
    sid = create(api).json()["id"]

    def act(action: str, role: str) -> Any:
        return c.post(f"/v1/streams/{sid}/{action}", headers=api.auth(role))

    assert api.problem(act("start", "backend"), 409)["type"].endswith("/no-products")
    add_product(api)
    assert api.problem(act("start", "backend"), 409)["type"].endswith("/no-supervisor")
    api.on_duty(sid)
    for action in ("stop", "pause", "resume"):
        assert api.problem(act(action, "operator"), 409)["type"].endswith("/illegal-transition")
    r = act("start", "backend")
    assert r.status_code == 200 and r.json()["desired_state"] == "live"
    api.problem(act("start", "operator"), 409)
    api.problem(act("resume", "supervisor"), 409)
    assert act("pause", "supervisor").json()["desired_state"] == "paused"
    api.problem(act("pause", "supervisor"), 409)
    assert act("resume", "supervisor").json()["desired_state"] == "live"
    assert act("stop", "backend").json()["desired_state"] == "stopped"
    api.problem(act("stop", "supervisor"), 409)
    events = c.get(f"/v1/streams/{sid}/events", headers=api.auth("supervisor")).json()["items"]
    asked = [e["kind"] for e in events if e["kind"] not in ("started", "stopped")]
    assert asked == ["created", "start", "pause", "resume", "stop"]


async def _offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


# real time, so SQLite only; on PostgreSQL: events (restart test), price PATCH (test_api_products)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_live_health_price_change_and_whep(api: Api) -> None:
    c, h = api.client, api.auth("operator")
    add_product(api)
    made = create(api).json()
    sid, token = made["id"], made["whep_token"]
    api.on_duty(sid)
    assert c.post(f"/v1/streams/{sid}/start", headers=h).status_code == 200
    body = wait_status(api, sid, on_air)
    # the rate over the last report's window reaches real time: the first window after going
    # on air can hold the start's catch-up (10.95 fps once in a 4-worker suite run at load ~6)
    fps = wait_status(api, sid, lambda s: 20 <= (s["fps"] or 0) <= 30, timeout=10)
    st = body["status"]
    assert st["uptime_s"] > 0 and fps["status"]["uptime_s"] > 0
    assert st["product_id"] == "AF-1" and st["price"] == "89.99"
    assert st["av_offset_ms"] is not None and st["destinations"] == []
    deadline = time.monotonic() + 3
    while f'avatarcast_stream_fps{{stream="{sid}"}}' not in c.get("/metrics").text:
        assert time.monotonic() < deadline, "no fps gauge for the stream"
        time.sleep(0.1)

    assert c.patch("/v1/products/AF-1", json={"price": "79.99"}, headers=h).status_code == 200
    t0 = time.monotonic()
    wait_status(api, sid, lambda s: s["price"] == "79.99", timeout=5)
    assert time.monotonic() - t0 < 2.0

    # WHEP through the API with the viewer token only
    offer = asyncio.run(_offer())
    sdp = {"Content-Type": "application/sdp"}
    api.problem(c.post(f"/v1/streams/{sid}/whep", content=offer, headers=sdp), 401)
    api.problem(c.post(f"/v1/streams/{sid}/whep?token=wrong", content=offer, headers=sdp), 401)
    r = c.post(f"/v1/streams/{sid}/whep?token={token}", content=offer, headers=sdp)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/sdp") and "m=video" in r.text
    location = r.headers["location"]
    assert location.startswith(f"/v1/streams/{sid}/whep/")
    assert c.delete(location, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page = c.get(f"/v1/streams/{sid}/player?token={token}")
    assert page.status_code == 200 and f"/v1/streams/{sid}/whep" in page.text

    assert c.post(f"/v1/streams/{sid}/stop", headers=h).status_code == 200
    wait_status(api, sid, lambda s: s["state"] == "stopped", timeout=15)
    api.problem(c.post(f"/v1/streams/{sid}/whep?token={token}", content=offer, headers=sdp), 503)
    kinds = [e["kind"] for e in c.get(f"/v1/streams/{sid}/events", headers=h).json()["items"]]
    assert kinds == ["created", "start", "started", "stop", "stopped"]


# PostgreSQL only: its DB-specific path is the stream's lease row (control/leases.py: a claim that
# PostgreSQL re-checks on the row it locks) let go by the old app and claimed by the new one; on
# SQLite the same restore after a restart is tests/test_lifecycle.py's (``serve`` stopped by
# SIGTERM and started again: the stream is live again, its "stopped" event says "shutdown").
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_live_stream_is_live_again_after_a_restart(
    api_factory: Callable[..., AbstractContextManager[Api]],
) -> None:
    # no heartbeats here: a heartbeat lapse (60 s by default, reached at load 27) would put the
    # stream in safe mode and add a "command" event to the history checked below
    calm = {"supervision": {"heartbeat_timeout_s": 900, "stop_after_s": 1800}}
    with api_factory(sections=calm) as first:
        add_product(first)
        sid = create(first).json()["id"]
        first.on_duty(sid)
        first.client.post(f"/v1/streams/{sid}/start", headers=first.auth("operator"))
        wait_status(first, sid, on_air)
    with api_factory(sections=calm) as second:  # same database, new app: it comes back itself
        body = wait_status(second, sid, on_air)
        assert body["desired_state"] == "live"
        events = second.client.get(f"/v1/streams/{sid}/events", headers=second.auth()).json()
        kinds = [e["kind"] for e in events["items"]]
        assert kinds == ["created", "start", "started", "stopped", "started"]
        stopped = next(e for e in events["items"] if e["kind"] == "stopped")
        assert stopped["detail"]["reason"] == "shutdown"
