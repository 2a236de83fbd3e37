"""Viewer access to playback through a real ``avatarcast serve``: the viewer token stays out of
logs, referrers and caches, can be rotated, is signed short-lived for embedding, and playback
requests have a budget of their own.

OWASP API2:2023 (Broken Authentication): a leaked or never-changing viewer token.
OWASP API4:2023 (Unrestricted Resource Consumption): unauthenticated WHEP offers.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from avatarcast.control.viewer_tokens import sign_viewer_token, viewer_token_valid
from served import Served, serve

SDP = {"Content-Type": "application/sdp"}
#: no refill during the test: the budget is exactly the burst
BUDGET = {"AVATARCAST_WHEP__VIEWER_BURST": "12", "AVATARCAST_WHEP__VIEWER_RATE": "0.001"}


def _stream(s: Served, c: httpx.Client, name: str = "night") -> tuple[str, str]:
    r = c.post("/v1/streams", json={"name": name}, headers=s.auth("operator"))
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["whep_token"]


def _player(s: Served, c: httpx.Client, sid: str, token: str) -> int:
    return c.get(f"/v1/streams/{sid}/player", params={"token": token}).status_code


def test_viewer_token_rotation_signing_redaction_and_budget_api2_api4_2023(
    tmp_path: Path,
) -> None:
    """API2:2023 and API4:2023, over HTTP against ``serve --verbose`` (access log on)."""
    with serve(tmp_path, BUDGET, args=("--verbose",)) as s, s.client() as c:
        sid, token = _stream(s, c)
        # 1: the player page keeps the token out of referrers and caches
        page = c.get(f"/v1/streams/{sid}/player", params={"token": token})
        assert page.status_code == 200 and f"/v1/streams/{sid}/whep" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        # 2-4: a signed token works for this stream only, and not once tampered with
        r = c.post(
            f"/v1/streams/{sid}/viewer-tokens", json={"ttl_s": 600}, headers=s.auth("operator")
        )
        assert r.status_code == 201, r.text
        signed = r.json()["token"]
        assert signed.startswith("v1.") and token not in signed
        assert r.json()["player_url"] == f"/v1/streams/{sid}/player?token={signed}"
        assert _player(s, c, sid, signed) == 200
        assert _player(s, c, sid, signed[:-2] + ("AA" if signed[-2:] != "AA" else "BB")) == 401
        other, _ = _stream(s, c, "day")
        assert _player(s, c, other, signed) == 401
        # signing and rotating need an operator key of the stream's tenant
        too_long = {"ttl_s": 10**9}
        bad = c.post(f"/v1/streams/{sid}/viewer-tokens", json=too_long, headers=s.auth("operator"))
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.ttl_s"
        for headers, status in (
            (s.auth("supervisor"), 403),
            ({"Authorization": f"Bearer {s.other_key}"}, 404),
            ({}, 401),
        ):
            r = c.post(f"/v1/streams/{sid}/viewer-token/rotate", headers=headers)
            assert r.status_code == status, (headers, r.text)
        # 5-7: rotation voids the old token and every token signed with it
        r = c.post(f"/v1/streams/{sid}/viewer-token/rotate", headers=s.auth("operator"))
        assert r.status_code == 200, r.text
        fresh = r.json()["whep_token"]
        assert fresh != token
        assert c.get(f"/v1/streams/{sid}", headers=s.auth()).json()["whep_token"] == fresh
        assert [_player(s, c, sid, t) for t in (token, signed, fresh)] == [401, 401, 200]
        # 8-12: the rest of this address's playback budget; then 429 while the API answers
        for _ in range(5):
            r = c.post(f"/v1/streams/{sid}/whep", content=b"v=0", headers=SDP)
            assert r.status_code == 401
        r = c.post(f"/v1/streams/{sid}/whep?token={fresh}", content=b"v=0", headers=SDP)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
        assert _player(s, c, sid, fresh) == 429
        assert c.get("/v1/streams", headers=s.auth()).status_code == 200
        log = s.output()
    assert "token=****" in log  # the access log had the player lines, redacted
    for secret in (token, fresh, signed):
        assert secret not in log


def test_signed_viewer_tokens_expire_api2_2023() -> None:
    """API2:2023: a signed token is void after its expiry and for any other stream or key."""
    signed = sign_viewer_token("stream-secret", "s1", 1_000)
    assert viewer_token_valid(signed, stream_token="stream-secret", stream_id="s1", now=999)
    assert not viewer_token_valid(signed, stream_token="stream-secret", stream_id="s1", now=1_000)
    assert not viewer_token_valid(signed, stream_token="stream-secret", stream_id="s2", now=0)
    assert not viewer_token_valid(signed, stream_token="rotated", stream_id="s1", now=0)
    forged = signed.replace("v1.1000.", "v1.99999.")
    assert not viewer_token_valid(forged, stream_token="stream-secret", stream_id="s1", now=0)
