"""A tenant's seller through the API, and its panel in the picture of a real stream's recording.

On SQLite and PostgreSQL: admins set the seller on ``/v1/tenants``, operators on
``/v1/tenant/seller``; the runner carries it to the worker, and the recorded frames show the
panel as the compositor draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.pack import load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.programme.compositor import Compositor, SellerInfo
from avatarcast.yuv import YuvFrame
from test_api_streams import FRYER, on_air, wait_status

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
#: its apps start streams: workers forked from a zygote, as deployed (conftest_api)
WORKER_ZYGOTE = True
pytestmark = pytest.mark.timeout(180)

SELLER = {"name": "Kovana Store BV", "contact": "service@kovana.example"}
I16 = npt.NDArray[np.int16]


def test_admins_and_operators_set_the_seller(api: Api) -> None:
    c, admin, op = api.client, api.auth(), api.auth("operator")
    made = {"name": "initech", "seller_name": "Initech BV", "seller_contact": "https://i.example"}
    r = c.post("/v1/tenants", json=made, headers=admin)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert (r.json()["seller_name"], r.json()["seller_contact"]) == (
        "Initech BV",
        "https://i.example",
    )
    contact_only = {"name": "x", "seller_contact": "a@b.example"}
    bad = api.problem(c.post("/v1/tenants", json=contact_only, headers=admin), 422)
    assert [e["field"] for e in bad["errors"]] == ["body.seller_name"]
    api.problem(
        c.post("/v1/tenants", json={"name": "y", "seller_name": " pad"}, headers=admin), 422
    )

    patched = c.patch(f"/v1/tenants/{tid}", json={"seller_contact": None}, headers=admin).json()
    assert (patched["name"], patched["seller_name"], patched["seller_contact"]) == (
        "initech",
        "Initech BV",
        None,
    )
    api.problem(c.patch(f"/v1/tenants/{tid}", json={"name": "acme"}, headers=admin), 409)
    api.problem(
        c.patch(
            f"/v1/tenants/{tid}", json={"seller_name": None, "seller_contact": "c"}, headers=admin
        ),
        422,
    )
    api.problem(c.patch(f"/v1/tenants/{tid}", json={"name": "z"}, headers=op), 403)
    api.problem(c.patch("/v1/tenants/nope", json={}, headers=admin), 404)

    # the tenant's own operators
    assert c.get("/v1/tenant/seller", headers=op).json() == {"name": None, "contact": None}
    api.problem(c.put("/v1/tenant/seller", json=SELLER, headers=api.auth("supervisor")), 403)
    api.problem(c.put("/v1/tenant/seller", json={"contact": "x"}, headers=op), 422)
    r = c.put("/v1/tenant/seller", json=SELLER, headers=op)
    assert r.status_code == 200 and r.json() == SELLER
    assert c.get("/v1/tenant/seller", headers=api.auth("backend")).json() == SELLER
    assert c.get("/v1/tenant/seller", headers=api.other).json()["name"] is None
    mine = c.get(f"/v1/tenants/{api.tenant_id}", headers=admin).json()
    assert (mine["seller_name"], mine["seller_contact"]) == (SELLER["name"], SELLER["contact"])
    assert c.delete("/v1/tenant/seller", headers=op).status_code == 204
    assert c.get("/v1/tenant/seller", headers=op).json()["name"] is None

    audit = c.get("/v1/audit", params={"limit": 500}, headers=admin).json()["items"]
    changes = [e["detail"]["seller_name"] for e in audit if e["kind"] == "seller_updated"]
    assert changes == [SELLER["name"], None]


def _recorded_luma(folder: Path, every: int = 25) -> list[npt.NDArray[np.uint8]]:
    segments = sorted(folder.rglob("segment-*.mp4"))  # one folder per run of the stream
    assert segments, f"no recording in {folder}"
    frames = []
    for seg in segments:
        with av.open(str(seg)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every == 0:
                    frames.append(frame.to_ndarray(format="yuv420p")[: frame.height])
    return frames


def _references(avatar: str, lang: str) -> tuple[Compositor, I16, I16]:
    """The seller box and its luma as the compositor draws it, with and without a seller."""
    out: list[I16] = []
    comps = []
    for seller in (SellerInfo(**SELLER), None):
        renderer = SpriteAvatarRenderer(load_pack(avatar))
        comp = Compositor(
            lang=lang,
            renderer=renderer,
            background=renderer.render_background(1280, 720),
            seller=seller,
        )
        frame = YuvFrame(1280, 720)
        comp.compose(frame, state=AvatarState(), product=None, caption=None)
        comps.append(comp)
        out.append(frame.y.astype(np.int16))
    return comps[0], out[0], out[1]


# real time, so SQLite only; on PostgreSQL: the seller PUT in the test above
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_tenants_seller_is_on_the_recorded_stream(
    api_factory: Callable[..., AbstractContextManager[Api]], tmp_path: Path
) -> None:
    """The seller set before the start is on every frame; a seller PUT and a label PATCH while
    the stream runs show from within a second of the applied command (one run, no restart)."""
    with api_factory(sections={"recordings_dir": str(tmp_path / "rec")}) as api:
        c, op = api.client, api.auth("operator")
        assert c.put("/v1/tenant/seller", json=SELLER, headers=op).status_code == 200
        assert c.post("/v1/products", json=FRYER, headers=op).status_code == 201
        body: dict[str, Any] = {"name": "seller", "lang": "nl", "record": True}
        made = c.post("/v1/streams", json=body, headers=op).json()
        sid = made["id"]
        api.on_duty(sid)
        assert c.post(f"/v1/streams/{sid}/start", headers=op).status_code == 200
        wait_status(api, sid, lambda s: on_air(s) and s["frames"] > 100)
        applied = _restyle_on_air(api, sid)
        last = max(a["pts"] for a in applied)
        wait_status(api, sid, lambda s: s["frames"] > last + 60)
        assert c.post(f"/v1/streams/{sid}/stop", headers=op).status_code == 200
        wait_status(api, sid, lambda s: s["state"] == "stopped", timeout=15)

    comp, with_seller, without = _references(made["avatar"], "nl")
    box = comp.region_of("seller")

    def panel(y: npt.NDArray[Any]) -> I16:
        return np.asarray(y[box.y : box.bottom, box.x : box.right], np.int16)

    frames = _recorded_luma(tmp_path / "rec" / api.tenant_id / sid)  # every 25th: t = i s
    asked = min(a["requested_t"] for a in applied)
    before = [y for i, y in enumerate(frames) if i < asked - 0.04]
    assert len(before) >= 4
    # the reference itself: white text on the panel, which the backdrop alone does not have
    assert (panel(with_seller) > 200).sum() > 200 and (panel(without) > 200).sum() == 0
    for i, y in enumerate(before):
        got = panel(y)
        near = float(np.abs(got - panel(with_seller)).mean())
        far = float(np.abs(got - panel(without)).mean())
        assert near < 4 and far > 10, f"frame {i * 25}: {near=:.1f} {far=:.1f}"
        assert (got > 200).sum() > 0.8 * (panel(with_seller) > 200).sum()
    _check_restyled(made["avatar"], frames, applied)


OTHER = {"name": "Lumo Outlet BV", "contact": "lumo.example"}
NEW_LABEL = {"text": "AI presenter", "position": "bottom-right"}


def _restyled(avatar: str, seller: dict[str, str] | None, label: Any) -> tuple[Compositor, I16]:
    from avatarcast.programme.overlays import LabelConfig

    renderer = SpriteAvatarRenderer(load_pack(avatar))
    comp = Compositor(
        lang="nl",
        renderer=renderer,
        background=renderer.render_background(1280, 720),
        seller=SellerInfo(**seller) if seller else None,
        label=LabelConfig(**label) if label else None,
    )
    frame = YuvFrame(1280, 720)
    comp.compose(frame, state=AvatarState(), product=None, caption=None)
    return comp, frame.y.astype(np.int16)


def _restyle_on_air(api: Api, sid: str) -> list[dict[str, Any]]:
    """PUT another seller and PATCH the label of the running stream; returns the two commands
    as the worker applied them (from the stream's events)."""
    import time

    c, op = api.client, api.auth("operator")
    assert c.put("/v1/tenant/seller", json=OTHER, headers=op).status_code == 200
    patched = c.patch(f"/v1/streams/{sid}", json={"label": NEW_LABEL}, headers=op)
    assert patched.status_code == 200, patched.text
    deadline, applied = time.monotonic() + 20, []
    while len(applied) < 2:
        assert time.monotonic() < deadline, applied
        page = c.get(f"/v1/streams/{sid}/events", params={"kind": "command"}, headers=op)
        applied = [e["detail"]["command"] for e in page.json()["items"]]
        applied = [a for a in applied if a["type"] in ("seller", "label")]
        time.sleep(0.2)
    by_type = {a["type"]: a for a in applied}
    assert by_type["seller"]["name"] == OTHER["name"]
    assert by_type["label"]["position"] == "bottom-right"
    return applied


def _check_restyled(avatar: str, frames: list[Any], applied: list[dict[str, Any]]) -> None:
    """Frames before the request lack the new panel and label; frames a second after the
    commands were applied show them as the compositor draws them."""
    new_comp, new = _restyled(avatar, OTHER, NEW_LABEL)
    boxes = [new_comp.region_of("seller"), new_comp.label.box]

    def error(y: npt.NDArray[Any]) -> float:
        return max(
            float(
                np.abs(
                    np.asarray(y[b.y : b.bottom, b.x : b.right], np.int16)
                    - new[b.y : b.bottom, b.x : b.right]
                ).mean()
            )
            for b in boxes
        )

    asked = min(a["requested_t"] for a in applied)
    done = max(a["applied_t"] for a in applied)
    assert done - asked <= 1.0
    before = [error(y) for i, y in enumerate(frames) if i < asked - 0.04]
    after = [error(y) for i, y in enumerate(frames) if i >= done + 1.0]
    assert before and after
    assert min(before) > 10, before
    assert max(after) < 4, after
