"""The onnx mouth engine inside a twin: drawn by the twin renderer, found in the pack, and live
in a real stream worker, where a too-slow model falls back to patches and says so."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.neural.twin import OnnxTwinEngine
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.engine import create_engine
from avatarcast.avatar.twin.pack import load_twin
from avatarcast.avatar.twin.render import TwinRenderer
from avatarcast.catalog.model import Product
from avatarcast.errors import ConfigError
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.runner.base import StreamEvent, StreamSpec
from avatarcast.runner.local import LocalRunner
from avatarcast.yuv import YuvFrame
from mouth_models import make_models, talking_pcm
from neural_twin_pack import MOUTH_BOX, make_twin_pack

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_models(tmp_path_factory.mktemp("twin-models"))


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("assets") / "avatars"
    make_twin_pack(root)
    return root.parent


def clip_of(assets: Path) -> TwinClip:
    return TwinClip(load_twin(assets / "avatars" / "astro" / "manifest.json"))


def chunk(seconds: float) -> SpeechChunk:
    s = Sentence(text="twin line", lang="en", source="template")
    return SpeechChunk(pcm=talking_pcm(seconds), sentence=s)


def test_the_models_mouth_goes_into_the_twins_mouth_box(models: Path, assets: Path) -> None:
    clip = clip_of(assets)
    engine = create_engine(
        "onnx", clip=clip, fps=25, model=str(models / "wav2lip96.mouth.json"), live=False
    )
    assert isinstance(engine, OnnxTwinEngine)
    renderer = TwinRenderer(clip, engine, frame_width=512, frame_height=512)
    try:
        engine.speak(chunk(1.0), 5)
        frames = []
        for n in range(3, 12):
            out = YuvFrame(512, 512)
            renderer.draw(out, AvatarState(frame=n))
            frames.append((n, out))
        for n, out in frames:
            idle = clip.frame(n)
            changed = np.argwhere(out.y != idle.y)
            if n < 5:
                assert len(changed) == 0  # not speaking: the idle loop itself
                continue
            assert len(changed) > 200, n
            x, y, w, h = clip.mouth_box(n)  # the box moves with the loop's sway
            assert changed[:, 1].min() >= x and changed[:, 1].max() < x + w
            assert changed[:, 0].min() >= y and changed[:, 0].max() < y + h
        again = YuvFrame(512, 512)  # a second view asks for the last frame: the same mouth
        renderer.draw(again, AvatarState(frame=11))
        assert np.array_equal(again.buf, frames[-1][1].buf)
        crop = engine.mouth(11, AvatarState(frame=11))
        assert crop is not None and crop.rgb.shape == (64, 64, 3)
        assert engine.status().hits == 7 and engine.status().misses == 0
    finally:
        engine.close()


def test_the_packs_own_model_is_found_in_its_mouth_folder(models: Path, assets: Path) -> None:
    clip = clip_of(assets)
    folder = clip.pack.path("mouth")
    folder.mkdir()
    try:
        with pytest.raises(
            ConfigError, match=r"twin pack 'astro' has no \*\.mouth\.json in its mouth/ folder"
        ):
            create_engine("onnx", clip=clip, fps=25)
        for f in ("wav2lip96.onnx", "wav2lip96.mouth.json"):
            shutil.copy(models / f, folder / f)
        engine = create_engine("onnx", clip=clip, fps=25)
        assert isinstance(engine, OnnxTwinEngine) and engine.status().model == "wav2lip96"
        engine.close()
    finally:
        shutil.rmtree(folder)
    face = clip.face_box(0)
    assert face[0] <= MOUTH_BOX[0]


async def _wait(
    runner: LocalRunner, sid: str, ok: object, within: float, what: str
) -> dict[str, object]:
    deadline = time.monotonic() + within
    while True:
        st = runner.status(sid)
        health = st.health.as_dict() if st is not None and st.health is not None else {}
        if ok(health):  # type: ignore[operator]
            return health
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {within} s; last {st}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def runner() -> AsyncIterator[tuple[LocalRunner, list[StreamEvent]]]:
    events: list[StreamEvent] = []
    r = LocalRunner(on_event=events.append, on_output=events.append, stop_timeout=5.0)
    try:
        yield r, events
    finally:
        await r.drain()


async def test_live_stream_on_a_slow_model_falls_back_to_patches_and_says_so(
    runner: tuple[LocalRunner, list[StreamEvent]],
    models: Path,
    assets: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AVATARCAST_ASSETS", str(assets))
    r, events = runner
    programme = ProgrammeOptions(
        avatar="astro", mouth_engine="onnx", mouth_model=str(models / "slow96.mouth.json")
    )
    product = Product(id="AF-1", title="Air fryer", brand="Acme", price=Decimal("89.99"))
    await r.start("tw", StreamSpec(tenant_id="t1", programme=programme, products=(product,)))
    first = await _wait(
        r, "tw", lambda h: h.get("state") == "live" and h.get("mouth"), 60, "no live twin"
    )
    assert first["mouth"]["model"] == "slow96"  # type: ignore[index]
    health = await _wait(
        r,
        "tw",
        lambda h: (h.get("mouth") or {}).get("engine") == "patches",
        40,
        "no fallback to patches",
    )
    mouth = health["mouth"]
    # a 5 s window of speech frames over the 2 % limit: far more than one second of misses
    assert isinstance(mouth, dict) and mouth["fallbacks"] == 1 and mouth["misses"] > 25
    (switch,) = mouth["switches"]
    assert switch["engine"] == "patches" and "limit 2 %" in switch["reason"]
    # the switch reaches the runner's callback as an event, with the frame it happened at
    await _wait(r, "tw", lambda h: any(e.kind == "mouth_engine" for e in events), 5, "no event")
    (event,) = [e for e in events if e.kind == "mouth_engine"]
    assert event.detail["engine"] == "patches" and event.detail["frame"] == switch["frame"]
    # the stream goes on past the switch (the engine's own timing is test_mouth_onnx's: the
    # stream's fps here depends on how loaded the machine is)
    after = switch["frame"] + 25
    await _wait(r, "tw", lambda h: int(h.get("frames", 0)) > after, 20, "no frames after it")


def test_a_bad_mouth_model_fails_before_air(
    models: Path, tmp_path: Path, assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from avatarcast.pipeline.build import validate

    monkeypatch.setenv("AVATARCAST_ASSETS", str(assets))
    product = Product(id="AF-1", title="Air fryer", brand="Acme", price=Decimal("89.99"))
    bad = tmp_path / "m.mouth.json"
    bad.write_text((models / "wav2lip96.mouth.json").read_text().replace('"bgr"', '"rgba"'))
    shutil.copy(models / "wav2lip96.onnx", tmp_path / "wav2lip96.onnx")
    opts = ProgrammeOptions(avatar="astro", mouth_engine="onnx", mouth_model=str(bad))
    with pytest.raises(ConfigError, match=r"mouth model 'm\.mouth\.json'.* colour_order"):
        validate(opts, [product])
    ok = ProgrammeOptions(
        avatar="astro", mouth_engine="onnx", mouth_model=str(models / "wav2lip96.mouth.json")
    )
    assert validate(ok, [product]).opts.mouth_model == ok.mouth_model
