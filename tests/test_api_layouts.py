"""Layouts through the API: a stream's size and preset, a destination's own layout.

The live part runs a real worker that pushes a landscape programme's portrait view to a real
nginx-rtmp, and reads it back from the server.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, get_args

import pytest

from avatarcast.control.schemas.streams import Preset, Size
from avatarcast.control.streaming import manager_of
from avatarcast.db.models_streams import StreamRow
from avatarcast.programme.layout import PRESETS, SIZES
from media_probe import ffprobe, stream_of
from rtmp_server import RtmpServer

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
#: its apps start streams: workers forked from a zygote, as deployed (conftest_api)
WORKER_ZYGOTE = True
pytestmark = pytest.mark.timeout(180)

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}


def _create(api: Api, path: str, **body: Any) -> Any:
    return api.client.post(path, json=body, headers=api.auth("operator"))


def test_schema_names_the_same_sizes_and_presets_as_the_pipeline() -> None:
    assert set(get_args(Size)) == set(SIZES)
    assert set(get_args(Preset)) == set(PRESETS)


def test_unknown_size_or_preset_is_422_naming_the_allowed_values(api: Api) -> None:
    for path, body, field in [
        ("/v1/streams", {"name": "s", "size": "720x720"}, "body.size"),
        ("/v1/streams", {"name": "s", "preset": "snapchat"}, "body.preset"),
        (
            "/v1/destinations",
            {"name": "d", "url": "rtmp://a.example/live", "size": "4k"},
            "body.size",
        ),
        (
            "/v1/destinations",
            {"name": "d", "url": "rtmp://a.example/live", "preset": "vine"},
            "body.preset",
        ),
    ]:
        bad = api.problem(_create(api, path, **body), 422)
        assert [e["field"] for e in bad["errors"]] == [field], bad
        allowed = SIZES if field == "body.size" else PRESETS
        message = bad["errors"][0]["message"]
        assert all(f"'{name}'" in message for name in allowed), message


def test_layouts_stored_and_handed_to_the_worker(api: Api) -> None:
    tall = _create(
        api,
        "/v1/destinations",
        name="tiktok",
        url="rtmp://1.1.1.1/app",
        stream_key="k1",
        size="720x1280",
        preset="tiktok",
    )
    assert tall.status_code == 201, tall.text
    assert (tall.json()["size"], tall.json()["preset"]) == ("720x1280", "tiktok")
    wide = _create(api, "/v1/destinations", name="yt", url="rtmp://8.8.4.4/app", stream_key="k2")
    made = _create(
        api,
        "/v1/streams",
        name="two-shapes",
        preset="youtube",
        destination_ids=[wide.json()["id"], tall.json()["id"]],
    )
    assert made.status_code == 201, made.text
    assert (made.json()["size"], made.json()["preset"]) == (None, "youtube")
    ctx = api.app.state.ctx
    manager = manager_of(ctx)
    with manager.sessions() as session:
        row = session.get(StreamRow, made.json()["id"])
        assert row is not None
        spec = manager.spec_for(session, row)
    assert (spec.programme.size, spec.programme.preset) == ("720p", "youtube")
    assert spec.destination_layouts == (None, "720x1280/tiktok")
    patched = api.client.patch(
        f"/v1/destinations/{tall.json()['id']}",
        json={"preset": "douyin"},
        headers=api.auth("operator"),
    )
    assert patched.status_code == 200 and patched.json()["preset"] == "douyin"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_portrait_destination_goes_live_with_a_preview_still(
    api_factory: Any, tmp_path: Any
) -> None:
    server = RtmpServer(tmp_path / "nginx")
    server.start()
    try:
        with api_factory(allow_private_destinations=True) as api:
            c, h = api.client, api.auth("operator")
            assert c.post("/v1/products", json=FRYER, headers=h).status_code == 201
            url = server.url("portrait")
            base, key = url.rsplit("/", 1)
            dest = _create(
                api, "/v1/destinations", name="tt", url=base, stream_key=key, size="720x1280",
                preset="tiktok",
            )  # fmt: skip
            assert dest.status_code == 201, dest.text
            made = _create(api, "/v1/streams", name="p", destination_ids=[dest.json()["id"]])
            sid = made.json()["id"]
            api.on_duty(sid)
            assert c.post(f"/v1/streams/{sid}/start", headers=h).status_code == 200
            deadline = time.monotonic() + 40
            while True:
                st = c.get(f"/v1/streams/{sid}", headers=h).json()["status"]
                stills = [lay.get("still") for lay in st.get("layouts", [])]
                if len(stills) == 2 and all(stills) and (st["frames"] or 0) > 25:
                    break
                assert time.monotonic() < deadline, st
                time.sleep(0.2)
            layouts = {lay["layout"]: lay for lay in st["layouts"]}
            assert set(layouts) == {"720p/none", "720x1280/tiktok"}
            assert layouts["720x1280/tiktok"]["destinations"] == [st["destinations"][0]["name"]]
            assert st["destinations"][0]["layout"] == "720x1280/tiktok"
            jpeg = base64.b64decode(layouts["720x1280/tiktok"]["still"].split(",", 1)[1])
            assert jpeg[:3] == b"\xff\xd8\xff"
            info = ffprobe(url, timeout=30)
            v = stream_of(info, "video")
            assert (v["codec_name"], v["width"], v["height"]) == ("h264", 720, 1280)
            assert c.post(f"/v1/streams/{sid}/stop", headers=h).status_code == 200
    finally:
        server.stop()
