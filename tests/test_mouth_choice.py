"""A twin's mouth engine chosen per stream: the typed field in the API, the console and the spec.

The packs are made here (tests/neural_twin_pack.py); a model manifest only needs a file whose
sha256 it names, so the "model" is a few bytes (the engine itself is tested in test_twin_onnx).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import pytest

from avatarcast.avatar.twin.engine import ENGINES
from avatarcast.errors import ConfigError
from avatarcast.pipeline.spec import (
    MouthEngineName,
    ProgrammeChoices,
    ProgrammeOptions,
    resolve_mouth,
)
from neural_twin_pack import make_twin_pack

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
pytestmark = pytest.mark.timeout(120)


def _model(folder: Path, name: str, *, sha: str | None = None) -> None:
    folder.mkdir(exist_ok=True)
    data = f"weights of {name}".encode()
    (folder / f"{name}.onnx").write_bytes(data)
    manifest = {
        "name": name,
        "model": f"{name}.onnx",
        "sha256": sha or hashlib.sha256(data).hexdigest(),
        "licence": "MIT (test)",
        "audio_feature": "mel80x16",
        "crop_size": 96,
        "colour_order": "bgr",
        "input_range": [0, 1],
        "output_range": [0, 1],
    }
    (folder / f"{name}.mouth.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``astro``: a twin without models; ``talker``: one good and one tampered model."""
    root = tmp_path_factory.mktemp("assets") / "avatars"
    make_twin_pack(root, "astro")
    talker = root / "talker"
    shutil.copytree(root / "astro", talker)
    manifest = json.loads((talker / "manifest.json").read_text())
    manifest["name"] = "talker"
    (talker / "manifest.json").write_text(json.dumps(manifest))
    _model(talker / "mouth", "good")
    _model(talker / "mouth", "bad", sha="0" * 64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVATARCAST_ASSETS", str(root.parent))
        yield root


def test_the_typed_engine_names_are_the_engines_there_are() -> None:
    assert set(get_args(MouthEngineName)) == set(ENGINES)


def test_the_spec_resolves_the_pack_model_and_refuses_mismatches(packs: Path) -> None:
    choices = ProgrammeChoices(avatar="talker", mouth_engine="onnx", mouth_model="good.mouth.json")
    opts = ProgrammeOptions.from_choices(choices)
    assert opts.mouth_engine == "onnx"
    assert opts.mouth_model == str(packs / "talker" / "mouth" / "good.mouth.json")
    chosen = resolve_mouth("talker", opts.mouth_engine, opts.mouth_model)
    assert chosen is not None and chosen.model == packs / "talker" / "mouth" / "good.mouth.json"
    assert resolve_mouth("astro", None, None) == resolve_mouth("astro", "patches", None)
    assert resolve_mouth("mila", None, None) is None  # the drawn presenter
    with pytest.raises(ConfigError, match=r"has sha256 [0-9a-f]{64}, the manifest says 0{64}"):
        resolve_mouth("talker", "onnx", "bad.mouth.json")
    with pytest.raises(ConfigError, match=r"has 2 \*\.mouth\.json .*name one") as e:
        resolve_mouth("talker", "onnx", None)
    assert e.value.field == "mouth_model"


def _create(api: Api, **body: object) -> dict[str, object]:
    r = api.client.post("/v1/streams", json={"name": "twin", **body}, headers=api.auth())
    return {"status": r.status_code, "body": r.json()}


def _problem(api: Api, **body: object) -> tuple[str, str]:
    r = _create(api, **body)
    assert r["status"] == 422, r
    error = r["body"]["errors"][0]  # type: ignore[index]
    return error["field"], error["message"]


def test_the_api_takes_the_engine_per_stream_and_names_what_is_wrong(api: Api, packs: Path) -> None:
    field, message = _problem(api, avatar="astro", mouth_engine="wav2lip")
    assert field == "body.mouth_engine" and "'patches'" in message and "'onnx'" in message
    field, message = _problem(api, avatar="astro", mouth_engine="onnx")
    assert field == "body.mouth_model"
    assert "twin pack 'astro' has no *.mouth.json in its mouth/ folder" in message
    field, message = _problem(
        api, avatar="talker", mouth_engine="onnx", mouth_model="bad.mouth.json"
    )
    assert field == "body.mouth_model" and "has sha256" in message and "0" * 64 in message
    assert str(packs) not in message  # names, never the server's folders
    field, message = _problem(
        api, avatar="talker", mouth_engine="onnx", mouth_model="gone.mouth.json"
    )
    assert (
        "no mouth model 'gone.mouth.json'" in message
        and "bad.mouth.json, good.mouth.json" in message
    )
    field, _ = _problem(api, avatar="talker", mouth_engine="onnx", mouth_model="../x.mouth.json")
    assert field == "body.mouth_model"
    field, message = _problem(
        api, avatar="talker", mouth_engine="patches", mouth_model="good.mouth.json"
    )
    assert field == "body.mouth_model" and "needs mouth_engine 'onnx'" in message
    field, message = _problem(api, avatar="mila", mouth_engine="patches")
    assert field == "body.mouth_engine" and "drawn presenter" in message

    made = _create(api, avatar="talker", mouth_engine="onnx", mouth_model="good.mouth.json")
    assert made["status"] == 201, made
    sid = made["body"]["id"]  # type: ignore[index]
    got = api.client.get(f"/v1/streams/{sid}", headers=api.auth()).json()
    assert (got["mouth_engine"], got["mouth_model"]) == ("onnx", "good.mouth.json")
    assert got["status"]["mouth"] is None  # not on air: no engine drawing


def test_the_console_form_takes_the_engine_and_the_stream_page_shows_it(
    api_factory: Callable[..., AbstractContextManager[Api]], packs: Path
) -> None:
    from avatarcast.console.views import presenter_words
    from avatarcast.control.schemas.streams import MouthHealth
    from avatarcast.db.models_streams import StreamRow

    origin = {"Origin": "http://testserver"}
    with api_factory(console=True) as api:
        c = api.client
        r = c.post("/console/sign-in", data={"api_key": api.keys["operator"]}, headers=origin)
        assert r.status_code == 200 and r.url.path == "/console/streams", r.text
        headers = {**origin, "X-CSRF-Token": _csrf(r.text)}
        form = {"name": "night", "avatar": "astro", "mouth_engine": "onnx"}
        bad = c.post("/console/streams", data=form, headers=headers)
        assert bad.status_code == 422
        assert "has no *.mouth.json in its mouth/ folder" in bad.text
        good = c.post(
            "/console/streams",
            data={**form, "avatar": "talker", "mouth_model": "good.mouth.json"},
            headers=headers,
        )
        assert good.status_code == 200, good.text
        listed = c.get("/v1/streams", headers=api.auth()).json()["items"]
        sid = next(s["id"] for s in listed if s["name"] == "night")
        page = c.get(f"/console/streams/{sid}")
        assert "talker, mouth engine onnx (good.mouth.json)" in page.text
    row = StreamRow(avatar="talker", mouth_engine="onnx", mouth_model="good.mouth.json")
    drawing = MouthHealth(engine="patches", model="good", miss_rate=0.04, fallbacks=1)
    assert presenter_words(row, drawing).endswith("; drawing with patches after 1 fallback")
    assert presenter_words(StreamRow(avatar="mila"), None) == "mila"


def _csrf(html: str) -> str:
    import re

    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "no csrf token on the page"
    return found.group(1)
