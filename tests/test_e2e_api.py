"""End to end through the HTTP API: catalog import, an RTMP destination, a live worker, and a
price change that must reach the stream's status and its decoded picture within 2 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.pack import load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.catalog.model import Product
from avatarcast.health import luma_plane
from avatarcast.programme.compositor import Compositor
from media_probe import ffprobe, stream_of
from rtmp_server import RtmpServer

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
#: its apps start streams: workers forked from a zygote, as deployed (conftest_api)
WORKER_ZYGOTE = True
pytestmark = pytest.mark.timeout(90)

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
KEY = "e2e-stream-key"


def _status(api: Api, sid: str) -> dict[str, Any]:
    r = api.client.get(f"/v1/streams/{sid}", headers=api.auth("supervisor"))
    assert r.status_code == 200, r.text
    status: dict[str, Any] = r.json()["status"]
    return status


def _wait(api: Api, sid: str, ok: Callable[[dict[str, Any]], bool], timeout: float) -> float:
    """Poll the stream's status until ``ok``; the seconds it took."""
    t0 = time.monotonic()
    while not ok(st := _status(api, sid)):
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"status not reached in {timeout} s: {st}")
        time.sleep(0.05)
    return time.monotonic() - t0


def _compositor(avatar: str, lang: str) -> Compositor:
    """The compositor the worker builds for a 720p stream of ``avatar`` in ``lang``."""
    renderer = SpriteAvatarRenderer(load_pack(avatar), frame_width=1280, frame_height=720)
    return Compositor(width=1280, height=720, lang=lang, renderer=renderer)


def _card_errors(
    compositor: Compositor, y_plane: npt.NDArray[np.uint8], new: Product, old: Product
) -> tuple[float, float]:
    """Mean absolute luma error of the frame against the new and the old card, on the card
    pixels where the two differ (the price and what follows from it)."""
    a, b = compositor.render_card(new), compositor.render_card(old)
    assert a.box == b.box
    x, y, w, h = a.box
    want_new, want_old = a.sprite.y.astype(np.float32), b.sprite.y.astype(np.float32)
    where = (a.sprite.a == 255) & (b.sprite.a == 255) & (np.abs(want_new - want_old) > 24)
    assert where.sum() > 200, "the two cards hardly differ"
    got = y_plane[y : y + h, x : x + w].astype(np.float32)
    return (
        float(np.abs(got - want_new)[where].mean()),
        float(np.abs(got - want_old)[where].mean()),
    )


# real time, so SQLite only; on PostgreSQL: price PATCH (test_api_products), status (supervision)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_price_change_reaches_status_and_rtmp_picture(
    api_factory: Callable[..., AbstractContextManager[Api]],
    rtmp_server: RtmpServer,
) -> None:
    with api_factory(allow_private_destinations=True) as api:
        c, h = api.client, api.auth("operator")
        r = c.post("/v1/keys", json={"name": "e2e", "role": "operator"}, headers=api.auth("admin"))
        assert r.status_code == 201, r.text
        h = {"Authorization": f"Bearer {r.json()['key']}"}

        r = c.post(
            "/v1/products/import?format=json",
            content=DEMO.read_bytes(),
            headers={**h, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 6 and r.json()["errors"] == []

        dest = {"name": "local", "url": rtmp_server.url("").rstrip("/"), "stream_key": KEY}
        r = c.post("/v1/destinations", json=dest, headers=h)
        assert r.status_code == 201, r.text
        r = c.post(
            "/v1/streams", json={"name": "e2e", "destination_ids": [r.json()["id"]]}, headers=h
        )
        assert r.status_code == 201, r.text
        made = r.json()
        sid = made["id"]
        api.on_duty(sid)
        assert c.post(f"/v1/streams/{sid}/start", headers=h).status_code == 200
        _wait(api, sid, lambda s: s["state"] == "live" and (s["frames"] or 0) > 25, 30)

        url = rtmp_server.url(KEY)
        info = ffprobe(url, timeout=20)
        v, a = stream_of(info, "video"), stream_of(info, "audio")
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", 1280, 720)
        assert a["codec_name"] == "aac"

        with av.open(url, options={"rw_timeout": "8000000"}, timeout=10.0) as container:
            frames = container.decode(video=0)
            for _ in range(25):  # on the live edge before the change
                next(frames)
            pid = _status(api, sid)["product_id"]
            old = Product.model_validate(
                {
                    k: value
                    for k, value in c.get(f"/v1/products/{pid}", headers=h).json().items()
                    if k not in ("created_at", "updated_at")
                }
            )
            price = (old.sale_price or old.price) - Decimal("10.00")
            field = "sale_price" if old.sale_price is not None else "price"
            r = c.patch(f"/v1/products/{pid}", json={field: str(price)}, headers=h)
            assert r.status_code == 200, r.text
            t0 = time.monotonic()
            took = _wait(api, sid, lambda s: s["price"] == str(price), 5)
            assert took < 2.0, took
            # decode on past the buffered frames; the last one read 2 s after the change went
            # on air before then, so if it shows the new card, the card changed within 2 s
            last = None
            for frame in frames:
                last = frame
                if time.monotonic() - t0 > 2.0:
                    break
            assert last is not None
        assert _status(api, sid)["product_id"] == pid

        new = old.model_copy(update={field: price})
        compositor = _compositor(made["avatar"], made["lang"])
        err_new, err_old = _card_errors(compositor, luma_plane(last), new, old)
        assert err_new < 8.0 and err_old > 4 * err_new, (err_new, err_old)

        assert c.post(f"/v1/streams/{sid}/stop", headers=h).status_code == 200
        _wait(api, sid, lambda s: s["state"] == "stopped", 15)
