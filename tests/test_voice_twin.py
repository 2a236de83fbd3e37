"""Voices of the twin: a Piper voice from a generated Piper-shaped model, an OpenAI-compatible
server's custom voice name, and espeak's timings stretched onto audio that has none."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.visemes import is_voiced_open, viseme_for
from avatarcast.errors import ConfigError
from avatarcast.frames import SAMPLE_RATE, Sentence
from avatarcast.voice.espeak import EspeakVoice
from avatarcast.voice.fallback import FallbackVoice
from avatarcast.voice.ipa import timed_from_ipa
from avatarcast.voice.piper import PiperVoice
from avatarcast.voice.registry import NetworkVoiceOptions, create_voice
from avatarcast.voice.timing import silent_spans_ms, stretch_timings, voiced_span_ms
from llm_server import SYLLABLE_S, ScriptedLlmServer
from mouth_models import make_models

TEXT = "This air fryer holds five litres."


def _sentence(text: str = TEXT, lang: str = "en") -> Sentence:
    return Sentence(text=text, lang=lang, source="template")


def _rms(pcm: npt.NDArray[np.int16], a_ms: int, b_ms: int) -> float:
    seg = pcm[a_ms * SAMPLE_RATE // 1000 : b_ms * SAMPLE_RATE // 1000].astype(np.float64)
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_models(tmp_path_factory.mktemp("voice-models"))


@pytest.fixture(scope="module")
def speech_server() -> Iterator[ScriptedLlmServer]:
    with ScriptedLlmServer() as server:
        yield server


async def test_piper_voice_speaks_with_its_own_phoneme_durations(models: Path) -> None:
    voice = create_voice(f"piper:{models / 'voice-tiny.onnx'}", lang="nl")
    assert isinstance(voice, PiperVoice)
    assert voice.info.languages == ("en",) and voice.info.offline  # from the voice's config
    chunk = await voice.synthesize(_sentence())
    again = await voice.synthesize(_sentence())
    await voice.aclose()
    assert np.array_equal(chunk.pcm, again.pcm)
    # the model makes 256 samples at 22.05 kHz per duration step: audio and timings agree
    assert chunk.phonemes[-1].end_ms == pytest.approx(chunk.duration_ms, abs=2)
    names = [p.phoneme for p in chunk.phonemes]
    assert names[:4] == ["_", "D", "I", "s"]  # ^ (start) is a pause, "ðɪs" in mnemonics
    assert "'E" in names  # "ˈɛ" of "air": the stress mark moved onto the vowel
    vowels = [p for p in chunk.phonemes if is_voiced_open(viseme_for(p.phoneme, "en"))]
    consonants = [p for p in chunk.phonemes if viseme_for(p.phoneme, "en") in ("DNL", "SZ", "FV")]
    assert len(vowels) >= 6 and len(consonants) >= 6
    # the tiny voice rings on vowels and hisses on consonants: the timings say which is which
    loud = np.median([_rms(chunk.pcm, p.start_ms + 5, p.end_ms - 5) for p in vowels])
    quiet = np.median([_rms(chunk.pcm, p.start_ms + 5, p.end_ms - 5) for p in consonants])
    assert loud > 3 * quiet > 0


def test_piper_voice_errors_name_the_file(models: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        PiperVoice(tmp_path / "none.onnx")
    shutil.copy(models / "voice-tiny.onnx", tmp_path / "v.onnx")
    with pytest.raises(ConfigError, match=r"no config v\.onnx\.json beside it"):
        PiperVoice(tmp_path / "v.onnx")
    config = json.loads((models / "voice-tiny.onnx.json").read_text())
    del config["phoneme_id_map"]
    (tmp_path / "v.onnx.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="has no 'phoneme_id_map'"):
        PiperVoice(tmp_path / "v.onnx")


def test_ipa_becomes_espeak_mnemonics() -> None:
    spans = [
        ("ˈ", 0, 0),
        ("ɜ", 0, 80),
        ("ː", 80, 80),
        (" ", 80, 90),
        (",", 90, 200),
        ("θ", 200, 250),
    ]
    got = [(p.phoneme, p.start_ms, p.end_ms) for p in timed_from_ipa(spans)]
    assert got == [("'3:", 0, 80), ("_", 80, 200), ("T", 200, 250)]


def test_stretched_timings_fit_the_voiced_span_and_fall_silent_in_its_gaps() -> None:
    guide = EspeakVoice("espeak-en-f").synthesize_blocking(_sentence())
    slow = EspeakVoice("espeak-en-gb-m", rate=120).synthesize_blocking(_sentence())
    pcm = np.concatenate([np.zeros(SAMPLE_RATE // 4, np.int16), slow.pcm])  # starts 250 ms late
    phonemes, words = stretch_timings(guide, pcm)
    span = voiced_span_ms(pcm)
    assert span is not None and 240 <= span[0] <= 300
    sounding = [p for p in phonemes if not p.phoneme.lstrip("'\",%=").startswith("_")]
    assert sounding[0].start_ms == span[0] and abs(sounding[-1].end_ms - span[1]) <= 1
    assert [w.word for w in words] == [w.word for w in guide.words]
    for a, b in silent_spans_ms(pcm):
        assert all(p.end_ms <= a or p.start_ms >= b for p in sounding)
    truth = [w.start_ms + 250 for w in slow.words]
    errors = [abs(w.start_ms - t) for w, t in zip(words, truth, strict=True)]
    assert max(errors) < 150, errors  # another voice, another tempo: words within 150 ms


async def test_custom_openai_voice_name_reaches_the_server_and_gets_timings(
    speech_server: ScriptedLlmServer,
) -> None:
    speech_server.reset()
    net = NetworkVoiceOptions(openai_base_url=speech_server.base_url, timeout_s=5)
    voice = create_voice("openai:anna-clone.v2", lang="en", network=net)
    assert isinstance(voice, FallbackVoice) and voice.info.name == "openai:anna-clone.v2"
    chunk = await voice.synthesize(_sentence())
    await voice.aclose()
    assert voice.failures == 0 and chunk.voice == "openai:anna-clone.v2"
    assert speech_server.speech_requests[0]["voice"] == "anna-clone.v2"
    # the served audio is bursts of SYLLABLE_S with silent gaps: the mouth pauses in each gap
    gaps = silent_spans_ms(chunk.pcm)
    assert len(gaps) >= 3
    for a, b in gaps:
        inside = [p for p in chunk.phonemes if p.start_ms < b and p.end_ms > a]
        assert {p.phoneme for p in inside} == {"_"}, (a, b, inside)
    assert chunk.phonemes[0].start_ms < SYLLABLE_S * 1000
    with pytest.raises(Exception, match="voice"):
        create_voice("openai:not a name", network=net)


def test_stream_options_accept_piper_paths_and_custom_openai_names(
    models: Path, tmp_path: Path
) -> None:
    from avatarcast.pipeline.spec import resolve_names

    piper = f"piper:{models / 'voice-tiny.onnx'}"
    assert resolve_names(lang="en", avatar=None, voice=piper).voice == piper
    assert resolve_names(lang="nl", avatar=None, voice="openai:anna-clone").voice
    with pytest.raises(ConfigError, match="does not speak 'nl'") as bad_lang:
        resolve_names(lang="nl", avatar=None, voice=piper)  # the tiny voice is en_US
    assert bad_lang.value.field == "voice"
    with pytest.raises(ConfigError, match="does not exist") as missing:
        resolve_names(lang="en", avatar=None, voice=f"piper:{tmp_path / 'none.onnx'}")
    assert missing.value.field == "voice"
    with pytest.raises(ConfigError, match="unknown voice"):
        resolve_names(lang="en", avatar=None, voice="piper-ish")
