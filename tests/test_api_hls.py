"""The HLS origin of ``serve``: access, caching, CORS, blocking playlist reloads, the embed page
and the pinned hls.js (checked against the npm tarball's checksum)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from avatarcast.control.embed import snippet
from avatarcast.control.routes.stream_hls import HLS_JS_SHA256, HLS_JS_URL, hls_js_path
from avatarcast.output.hls_playlist import PlaylistPart, PlaylistSegment, render_playlist
from conftest_api import start_api

if TYPE_CHECKING:
    from conftest_api import Api

SHOP = "https://shop.example"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    sections = {"hls": {"dir": str(tmp_path / "hls"), "cors_origins": [SHOP]}}
    with start_api(f"sqlite:///{tmp_path / 'a.db'}", sections=sections) as running:
        yield running


def _create(api: Api, name: str, hls: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if hls is not None:
        body["hls"] = hls
    r = api.client.post("/v1/streams", json=body, headers=api.auth("operator"))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _folder(api: Api, tmp_path: Path, stream_id: str) -> Path:
    folder = tmp_path / "hls" / api.tenant_id / stream_id
    folder.mkdir(parents=True)
    return folder


def _playlist(segments: int, open_parts: int = 0, *, ended: bool = False) -> str:
    segs = [
        PlaylistSegment(msn=i, uri=f"r1-{i:06d}.ts", duration=2.0, date=1.8e9 + 2 * i)
        for i in range(segments)
    ]
    parts = [
        PlaylistPart(uri=f"r1-{segments:06d}.{k}.ts", duration=0.4, independent=k == 0)
        for k in range(open_parts)
    ]
    return render_playlist(
        segs,
        target_duration=2,
        label={"ai_label": "AI-generated", "AIGC": '{"Label":"1"}'},
        part_target=0.4,
        open_parts=parts,
        next_msn=segments,
        ended=ended,
    )


def test_stream_create_takes_an_hls_option(api: Api) -> None:
    plain = _create(api, "plain", None)
    assert plain["hls"] is None and plain["hls_url"] is None and plain["embed_url"] is None
    body = _create(api, "shop", {"low_latency": True})
    assert body["hls"] == {"enabled": True, "low_latency": True, "public": False}
    assert body["hls_url"] == f"/v1/streams/{body['id']}/hls/index.m3u8"
    assert body["embed_url"] == f"/v1/streams/{body['id']}/embed"
    r = api.client.post(
        "/v1/streams", json={"name": "x", "hls": {"bogus": 1}}, headers=api.auth("operator")
    )
    api.problem(r, 422)
    r = api.client.get(f"/v1/streams/{body['id']}", headers=api.auth("operator"))
    assert r.json()["hls"]["low_latency"] is True


def test_token_cache_control_and_cors(api: Api, tmp_path: Path) -> None:
    s = _create(api, "shop", {})
    folder = _folder(api, tmp_path, s["id"])
    (folder / "index.m3u8").write_text(_playlist(3))
    (folder / "r1-000002.ts").write_bytes(b"G" * 188)
    url = s["hls_url"]

    r = api.client.get(url, headers={"Origin": SHOP})
    api.problem(r, 401)
    assert r.headers["access-control-allow-origin"] == SHOP

    r = api.client.get(url, params={"token": s["whep_token"]}, headers={"Origin": SHOP})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert r.headers["cache-control"] == "private, max-age=1"
    assert r.headers["access-control-allow-origin"] == SHOP
    assert f"r1-000002.ts?token={s['whep_token']}" in r.text
    assert f'URI="r1-000003.0.ts?token={s["whep_token"]}"' not in r.text  # no open parts here

    r = api.client.get(url, params={"token": s["whep_token"]}, headers={"Origin": "https://evil"})
    assert "access-control-allow-origin" not in r.headers

    seg = url.replace("index.m3u8", "r1-000002.ts")
    r = api.client.get(seg, headers={"Authorization": f"Bearer {s['whep_token']}"})
    assert r.status_code == 200 and r.content == b"G" * 188
    assert r.headers["content-type"] == "video/mp2t"
    assert r.headers["cache-control"] == "private, max-age=86400, immutable"

    missing = url.replace("index.m3u8", "r1-000009.ts")
    r = api.client.get(missing, params={"token": s["whep_token"]})
    api.problem(r, 404)
    assert r.headers["cache-control"] == "no-store"

    for bad in ("..%2Fa.db", "index.m3u8.bak", ".hidden.ts"):
        r = api.client.get(url.replace("index.m3u8", bad), params={"token": s["whep_token"]})
        assert r.status_code in (404, 422), (bad, r.status_code)

    r = api.client.options(url, headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == SHOP


def test_a_signed_viewer_token_plays_and_is_the_one_handed_on(api: Api, tmp_path: Path) -> None:
    s = _create(api, "shop", {})
    folder = _folder(api, tmp_path, s["id"])
    (folder / "index.m3u8").write_text(_playlist(3))
    (folder / "r1-000002.ts").write_bytes(b"G" * 188)
    r = api.client.post(
        f"/v1/streams/{s['id']}/viewer-tokens", json={"ttl_s": 600}, headers=api.auth("operator")
    )
    assert r.status_code == 201, r.text
    signed = r.json()["token"]
    assert signed != s["whep_token"]

    r = api.client.get(s["hls_url"], params={"token": signed})
    assert r.status_code == 200, r.text
    assert f"r1-000002.ts?token={signed}" in r.text
    assert s["whep_token"] not in r.text  # the stream's own token is never handed out
    page = api.client.get(s["embed_url"], params={"token": signed})
    assert page.status_code == 200 and signed in page.text and s["whep_token"] not in page.text
    forged = signed[:-2] + ("AA" if signed[-2:] != "AA" else "BB")
    api.problem(api.client.get(s["hls_url"], params={"token": forged}), 401)

    # rotating the stream's token voids the signed one (the access cache lives 1 s)
    r = api.client.post(f"/v1/streams/{s['id']}/viewer-token/rotate", headers=api.auth("operator"))
    assert r.status_code == 200, r.text
    time.sleep(1.1)
    seg = s["hls_url"].replace("index.m3u8", "r1-000002.ts")
    api.problem(api.client.get(seg, params={"token": signed}), 401)
    ok = api.client.get(seg, params={"token": r.json()["whep_token"]})
    assert ok.status_code == 200 and ok.content == b"G" * 188


def test_public_hls_needs_no_token_and_is_cacheable(api: Api, tmp_path: Path) -> None:
    s = _create(api, "cdn", {"public": True})
    folder = _folder(api, tmp_path, s["id"])
    (folder / "index.m3u8").write_text(_playlist(3, ended=True))
    r = api.client.get(s["hls_url"])
    assert r.status_code == 200
    assert "token=" not in r.text
    assert r.headers["cache-control"] == "public, max-age=60"  # an ended playlist never changes
    other = _create(api, "nohls", None)
    api.problem(api.client.get(f"/v1/streams/{other['id']}/hls/index.m3u8"), 404)


def test_blocking_reload_waits_for_the_part(api: Api, tmp_path: Path) -> None:
    s = _create(api, "ll", {"low_latency": True, "public": True})
    folder = _folder(api, tmp_path, s["id"])
    (folder / "index.m3u8").write_text(_playlist(3, open_parts=1))

    def later() -> None:
        time.sleep(0.6)
        tmp = folder / ".index.tmp"
        tmp.write_text(_playlist(3, open_parts=2))
        tmp.replace(folder / "index.m3u8")

    r = api.client.get(s["hls_url"], params={"_HLS_msn": 3, "_HLS_part": 0})
    assert r.status_code == 200 and r.text.count("#EXT-X-PART:") == 1  # already there: at once
    writer = threading.Thread(target=later)
    writer.start()
    t0 = time.monotonic()
    r = api.client.get(s["hls_url"], params={"_HLS_msn": 3, "_HLS_part": 1})
    waited = time.monotonic() - t0
    writer.join()
    assert r.status_code == 200
    assert r.text.rsplit("#EXTINF:", 1)[-1].count("#EXT-X-PART:") == 2
    assert 0.5 <= waited < 3.0, waited
    assert r.headers["cache-control"] == "public, max-age=60"


def test_embed_page_and_pinned_hls_js(api: Api, tmp_path: Path) -> None:
    s = _create(api, "shop", {})
    api.problem(api.client.get(s["embed_url"]), 401)
    r = api.client.get(s["embed_url"], params={"token": s["whep_token"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "AI-generated" in page and HLS_JS_URL in page
    assert f"/hls/index.m3u8?token={s['whep_token']}" in page
    assert "muted autoplay playsinline" in page and 'id="unmute"' in page
    assert r.headers["content-security-policy"] == f"frame-ancestors {SHOP}"

    assert f'src="{s["embed_url"]}"' in snippet(s["embed_url"])

    r = api.client.get(HLS_JS_URL)
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert hashlib.sha256(r.content).hexdigest() == HLS_JS_SHA256
    assert hashlib.sha256(hls_js_path().read_bytes()).hexdigest() == HLS_JS_SHA256
    api.problem(api.client.get(HLS_JS_URL.replace("1.7.4", "0.0.1")), 404)

    ll = _create(api, "ll", {"low_latency": True, "public": True})
    assert '"lowLatency": false' in api.client.get(ll["embed_url"]).text  # whole segments
    assert '"lowLatency": true' in api.client.get(ll["embed_url"], params={"ll": 1}).text
    assert (
        '"lowLatency": false'
        in api.client.get(s["embed_url"], params={"ll": 1, "token": s["whep_token"]}).text
    )

    r = api.client.get(f"/v1/streams/{s['id']}/on-air", params={"token": s["whep_token"]})
    assert r.status_code == 200 and r.json() == {"id": None, "title": None, "url": None}
