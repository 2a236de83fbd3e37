"""The chat WebSocket served by a real ``avatarcast serve`` process (uvicorn with the
``websockets`` library), with its limits (OWASP API2:2023 Broken Authentication: a revoked key
loses its socket; OWASP API4:2023 Unrestricted Resource Consumption: frame size and rate).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from served import Served, serve

ENV = {
    "AVATARCAST_API__KEY_CACHE_S": "1",
    "AVATARCAST_CHAT__MAX_FRAME_BYTES": "65536",
    "AVATARCAST_CHAT__FRAMES_PER_S": "20",
    "AVATARCAST_CHAT__FRAMES_BURST": "5",
}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Served, httpx.Client, str]]:
    with serve(tmp_path_factory.mktemp("chat"), ENV) as s, s.client() as c:
        op = s.auth("operator")
        product = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
        assert c.post("/v1/products", json=product, headers=op).is_success
        sid = c.post("/v1/streams", json={"name": "night"}, headers=op).json()["id"]
        yield s, c, sid


def _socket(s: Served, sid: str, key: str) -> ClientConnection:
    url = s.url.replace("http://", "ws://") + f"/v1/streams/{sid}/chat/ws"
    return connect(url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=10)


def _message(i: int) -> str:
    return json.dumps({"viewer_id": f"v{i}", "name": "Sanne", "text": f"hi {i}", "id": f"m{i}"})


def test_api2_the_socket_is_served_and_closes_when_its_key_is_revoked(
    served: tuple[Served, httpx.Client, str],
) -> None:
    """OWASP API2:2023: a real server upgrades the socket; revoking the key closes it (4401)
    within the key-cache bound, even while the socket is idle."""
    s, c, sid = served
    made = c.post("/v1/keys", json={"name": "bot", "role": "backend"}, headers=s.auth("operator"))
    key = made.json()["key"]
    with _socket(s, sid, key) as ws:
        ws.send(_message(1))
        reply = json.loads(ws.recv(timeout=10))
        assert "not on air" in reply["error"] or "chat not taken" in reply["error"], reply
        assert c.delete(f"/v1/keys/{made.json()['id']}", headers=s.auth("operator")).is_success
        revoked_at = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert time.monotonic() - revoked_at <= 1.0 + 1.5  # key_cache_s + slack
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    with pytest.raises(InvalidStatus, match=r"HTTP 403"):  # a revoked key cannot reconnect
        with _socket(s, sid, key) as ws:
            ws.recv(timeout=5)


def test_api4_frame_size_and_rate_are_capped(served: tuple[Served, httpx.Client, str]) -> None:
    """OWASP API4:2023: a frame over the limit closes the socket (1009); frames past the
    rate wait their turn instead of reaching the stream at once."""
    s, _, sid = served
    key = s.keys["backend"]
    with _socket(s, sid, key) as ws:
        t0 = time.monotonic()
        for i in range(25):
            ws.send(_message(i))
        replies = [json.loads(ws.recv(timeout=10)) for _ in range(25)]
        took = time.monotonic() - t0
    assert all("error" in r for r in replies)  # not on air, but every frame was answered
    assert took >= (25 - 5) / 20 * 0.9, took  # 5 at once, then 20 a second
    with _socket(s, sid, key) as ws:
        ws.send(json.dumps({"viewer_id": "v", "name": "x", "text": "a" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
