"""The one stream spec: it survives the trip to a worker unchanged, keeps its secrets out of
reprs, and its names are checked by one function for the CLI and the API."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import get_args

import pytest

from avatarcast.avatar.pack import list_packs
from avatarcast.catalog.model import Product
from avatarcast.control.schemas.streams import StreamCreate
from avatarcast.errors import ConfigError
from avatarcast.pipeline.spec import (
    LabelChoice,
    Preset,
    ProgrammeChoices,
    ProgrammeOptions,
    Size,
    resolve_names,
)
from avatarcast.programme.layout import PRESETS, SIZES
from avatarcast.runner.base import StreamSpec
from avatarcast.runner.worker import live_options
from avatarcast.script.llm import LlmOptions
from avatarcast.voice.registry import default_voice_for

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-DO-NOT-LEAK-0123456789"
DEST = "rtmp://127.0.0.1:1935/live/stream-key-DO-NOT-LEAK"


def full_spec() -> StreamSpec:
    llm = LlmOptions(base_url="http://127.0.0.1:9/v1", model="m", api_key=KEY, tone="calm")
    programme = ProgrammeOptions(
        stream_id="s1",
        lang="nl",
        writer="llm",
        llm=llm,
        size="1080p",
        fps=30,
        label_text="AI-presentator",
        label_position="bottom-right",
        seller=("Kovana Store BV", "service@kovana.example"),
    )
    product = Product(id="AF-1", title="Air fryer", brand="Acme", price=Decimal("89.99"))
    return StreamSpec(
        tenant_id="t1",
        programme=programme,
        approve_answers=True,
        products=(product,),
        destinations=(DEST,),
        record_dir=Path("/tmp/rec"),
        hls_dir=Path("/tmp/hls"),
        hls_low_latency=True,
        paused=True,
        ice_servers=({"urls": ["stun:127.0.0.1:3478"], "username": None},),
        whep_port=8123,
        whep_token="tok",
        nice=3,
    )


def test_the_spec_reaches_the_worker_unchanged_and_the_programme_goes_through() -> None:
    spec = full_spec()
    again = StreamSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.programme.llm is not None and again.programme.llm.api_key == KEY
    live = live_options(again)
    assert live.programme == spec.programme  # build() reads what the API wrote
    assert (live.destinations, live.record_dir, live.whep_port) == (
        (DEST,),
        Path("/tmp/rec"),
        8123,
    )
    assert (live.hls_dir, live.hls.low_latency) == (Path("/tmp/hls"), True)


def test_secrets_stay_out_of_the_spec_repr() -> None:
    text = repr(full_spec())
    assert KEY not in text and "stream-key" not in text and "tok" not in text
    assert "tenant_id='t1'" in text


def test_a_bad_option_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match="label_position"):
        ProgrammeOptions(label_position="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="writer"):
        ProgrammeOptions(writer="poet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="extra"):
        StreamSpec.model_validate({"tenant_id": "t1", "colour": "red"})


@pytest.mark.parametrize(
    ("names", "field"),
    [
        ({"lang": "xx", "avatar": None, "voice": None}, "lang"),
        ({"lang": "en", "avatar": "nobody", "voice": None}, "avatar"),
        ({"lang": "en", "avatar": None, "voice": "nobody"}, "voice"),
        ({"lang": "nl", "avatar": None, "voice": "espeak-en-f"}, "voice"),
    ],
)
def test_resolve_names_says_which_name_is_wrong(names: dict[str, str | None], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_names(**names)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_resolve_names_fills_the_defaults() -> None:
    for avatar, voice in ((None, None), ("default", "default")):
        names = resolve_names(lang="nl", avatar=avatar, voice=voice)
        assert (names.avatar, names.voice) == (list_packs()[0], default_voice_for("nl"))


def test_the_worker_refuses_a_bad_spec_naming_the_option() -> None:
    bad = json.dumps({"tenant_id": "t1", "programme": {"label_position": "middle"}})
    done = subprocess.run(
        [sys.executable, "-m", "avatarcast.runner.worker"],
        input=bad + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 3, done.stderr
    error = json.loads(done.stdout.splitlines()[0])
    assert error["type"] == "error" and not error["retryable"]
    assert error["error"].startswith("option programme.label_position:")


def test_the_cli_names_a_bad_writer(tmp_path: Path) -> None:
    args = ["--catalog", "configs/demo-catalog.json", "--writer", "poet", "--duration", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", "render", *args, "--out", str(tmp_path / "x.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "option writer" in done.stderr and not (tmp_path / "x.mp4").exists()


def test_the_api_takes_the_programme_choices_in_their_one_shape() -> None:
    """StreamCreate is ProgrammeChoices plus where the stream goes: the same fields, the same
    constraints; from_choices turns them into the spec, server defaults for what is unchosen."""
    assert issubclass(StreamCreate, ProgrammeChoices)
    for name, spec_field in ProgrammeChoices.model_fields.items():
        assert repr(StreamCreate.model_fields[name]) == repr(spec_field), name
    assert set(get_args(Size)) == set(SIZES) and set(get_args(Preset)) == set(PRESETS)
    body = StreamCreate.model_validate(
        {"name": "night", "lang": "nl", "size": "720x1280", "preset": "tiktok",
         "label": {"text": "AI-presentator", "position": "bottom-right"}}
    )  # fmt: skip
    opts = ProgrammeOptions.from_choices(body, stream_id="s9", fps=30)
    assert (opts.lang, opts.size, opts.preset, opts.fps, opts.stream_id) == (
        "nl", "720x1280", "tiktok", 30, "s9"
    )  # fmt: skip
    assert (opts.label_text, opts.label_position, opts.label_lang) == (
        "AI-presentator", "bottom-right", None
    )  # fmt: skip
    plain = ProgrammeOptions.from_choices(ProgrammeChoices(), default_size="1080p")
    assert (plain.lang, plain.size, plain.label_text, plain.avatar) == ("en", "1080p", None, None)
    with pytest.raises(ValueError, match="size"):
        StreamCreate.model_validate({"name": "n", "size": "4k"})
    with pytest.raises(ValueError, match="label"):
        StreamCreate.model_validate({"name": "n", "label": {"enabled": False}})
    assert LabelChoice().position == "top-left"
