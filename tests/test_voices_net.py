"""Network voices: OpenAI TTS against a real local server, edge-tts failing fast, the fallback.

The OpenAI voice talks to ``tests/llm_server.py`` over TCP through the real ``openai`` client;
the public Edge endpoint is unreachable here, so edge is pointed at a closed local port.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.pack import list_packs, load_pack
from avatarcast.avatar.render import SpriteAvatarRenderer
from avatarcast.errors import UnknownNameError, VoiceError
from avatarcast.frames import SAMPLE_RATE, Sentence
from avatarcast.health import mouth_openness
from avatarcast.logs import redact
from avatarcast.voice.audio import decode_mp3
from avatarcast.voice.edge import EdgeVoice
from avatarcast.voice.espeak import EspeakVoice
from avatarcast.voice.fallback import FallbackVoice
from avatarcast.voice.openai_tts import OpenAiTtsVoice
from avatarcast.voice.registry import (
    NetworkVoiceOptions,
    create_voice,
    default_voice_for,
    list_voices,
)
from llm_server import SPEECH_S_PER_CHAR, SYLLABLE_S, Hang, ScriptedLlmServer, Speech, Status
from media_probe import decoded_luma, ffprobe, stream_of

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
KEY = "sk-test-DO-NOT-LEAK-0123456789"
TEXT = "This air fryer holds five litres."


def _sentence(text: str = TEXT, lang: str = "en") -> Sentence:
    return Sentence(text=text, lang=lang, source="template")


def _rms(pcm: npt.NDArray[np.int16], start_s: float, end_s: float) -> float:
    seg = pcm[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)].astype(np.float64)
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


def _openai(server: ScriptedLlmServer, **kw: Any) -> OpenAiTtsVoice:
    opts: dict[str, Any] = {
        "model": "tts-test",
        "voice": "alloy",
        "base_url": server.base_url,
        "api_key": KEY,
        "timeout": 5.0,
    }
    opts.update(kw)
    return OpenAiTtsVoice(**opts)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def speech_server() -> Iterator[ScriptedLlmServer]:
    with ScriptedLlmServer() as server:
        yield server


@pytest.fixture
def server(speech_server: ScriptedLlmServer) -> ScriptedLlmServer:
    speech_server.reset()
    return speech_server


# --- OpenAI TTS -------------------------------------------------------------------------------


async def test_openai_pcm_decodes_to_48k_mono_of_the_served_duration(
    server: ScriptedLlmServer,
) -> None:
    voice = _openai(server)
    chunk = await voice.synthesize(_sentence())
    await voice.aclose()

    served = round(SPEECH_S_PER_CHAR * len(TEXT) * 24_000)
    assert chunk.pcm.dtype == np.int16 and chunk.pcm.ndim == 1
    assert len(chunk.pcm) == 2 * served  # 24 kHz -> 48 kHz exactly
    assert chunk.phonemes == () and chunk.voice == "openai:alloy"
    # the bursts survive: voiced in the middle of a syllable, silent in the gap after it
    assert _rms(chunk.pcm, 0.05, 0.10) > 2000 > 50 > _rms(chunk.pcm, 0.16, 0.19)
    assert _rms(chunk.pcm, SYLLABLE_S + 0.05, SYLLABLE_S + 0.10) > 2000

    (body,) = server.speech_requests
    assert body == {
        "model": "tts-test",
        "voice": "alloy",
        "input": TEXT,
        "response_format": "pcm",
    }
    assert server.speech_headers[0]["authorization"] == f"Bearer {KEY}"


async def test_openai_wav_at_another_rate_is_resampled(server: ScriptedLlmServer) -> None:
    server.script_speech(Speech(seconds=1.5, rate=22_050))
    voice = _openai(server, response_format="wav")
    chunk = await voice.synthesize(_sentence())
    await voice.aclose()

    assert server.speech_requests[0]["response_format"] == "wav"
    assert abs(len(chunk.pcm) - 1.5 * SAMPLE_RATE) <= 1
    assert chunk.duration_ms == 1500


async def test_openai_same_audio_gives_same_samples(server: ScriptedLlmServer) -> None:
    voice = _openai(server)
    a = await voice.synthesize(_sentence())
    b = await voice.synthesize(_sentence())
    await voice.aclose()
    assert np.array_equal(a.pcm, b.pcm)


@pytest.mark.parametrize(("code", "retryable"), [(500, True), (429, True), (401, False)])
async def test_openai_http_errors_are_voice_errors_without_the_key(
    server: ScriptedLlmServer, code: int, retryable: bool
) -> None:
    server.script_speech(Status(code))
    voice = _openai(server)
    with pytest.raises(VoiceError) as caught:
        await voice.synthesize(_sentence())
    await voice.aclose()
    assert caught.value.retryable is retryable
    assert f"HTTP {code}" in str(caught.value) and KEY not in str(caught.value)


async def test_openai_unreachable_is_retryable() -> None:
    voice = OpenAiTtsVoice(base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key=KEY)
    with pytest.raises(VoiceError, match="cannot connect") as caught:
        await voice.synthesize(_sentence())
    await voice.aclose()
    assert caught.value.retryable


def test_redact_hides_keys_and_tokens() -> None:
    text = (
        f"Incorrect API key provided: {KEY}; Authorization: Bearer abcdefgh12345678 api_key=zz9911"
    )
    out = redact(text)
    assert KEY not in out and "abcdefgh12345678" not in out and "zz9911" not in out
    assert out.startswith("Incorrect API key provided: sk-****;")


# --- the fallback -----------------------------------------------------------------------------


async def test_a_500_is_spoken_by_espeak_and_counted(server: ScriptedLlmServer) -> None:
    server.script_speech(Status(500))
    voice = FallbackVoice(_openai(server), EspeakVoice("espeak-en-f"), timeout=5.0)
    chunk = await voice.synthesize(_sentence())
    assert chunk.voice == "espeak-en-f" and len(chunk.phonemes) > 5
    assert chunk.duration_ms > 1000
    assert voice.failures == 1 and voice.fallbacks == 1
    assert voice.last_error is not None and "HTTP 500" in voice.last_error
    assert KEY not in voice.last_error

    again = await voice.synthesize(_sentence())  # the server answers again: back to openai
    await voice.aclose()
    assert again.voice == "openai:alloy" and voice.failures == 1
    assert voice.breaker.state == "closed"


async def test_a_hang_falls_back_within_the_timeout(server: ScriptedLlmServer) -> None:
    espeak = EspeakVoice("espeak-en-f")
    t0 = time.monotonic()
    await espeak.synthesize(_sentence())
    synthesis = time.monotonic() - t0

    server.script_speech(Hang(10.0))
    timeout = 0.5
    voice = FallbackVoice(_openai(server, timeout=30.0), espeak, timeout=timeout)
    t0 = time.monotonic()
    chunk = await voice.synthesize(_sentence())
    elapsed = time.monotonic() - t0
    await voice.aclose()

    assert chunk.voice == "espeak-en-f"
    assert elapsed < timeout + synthesis + 0.5
    assert voice.failures == 1 and voice.last_error == "no answer within 0.5 s"


async def test_breaker_rests_the_primary_then_tries_it_again(server: ScriptedLlmServer) -> None:
    now = [1000.0]
    server.script_speech(Status(503), Status(503))
    voice = FallbackVoice(
        _openai(server),
        EspeakVoice("espeak-en-f"),
        timeout=5.0,
        failures_to_open=2,
        cooldown=60.0,
        monotonic=lambda: now[0],
    )
    voices = [(await voice.synthesize(_sentence())).voice for _ in range(3)]
    assert voices == ["espeak-en-f"] * 3
    assert len(server.speech_requests) == 2  # the third never reached the server
    assert voice.breaker.state == "open" and voice.failures == 2

    now[0] += 61.0
    chunk = await voice.synthesize(_sentence())
    await voice.aclose()
    assert chunk.voice == "openai:alloy" and voice.breaker.state == "closed"
    assert len(server.speech_requests) == 3


# --- edge -------------------------------------------------------------------------------------


async def test_edge_fails_fast_when_unreachable_and_espeak_speaks() -> None:
    proxy = f"http://127.0.0.1:{_closed_port()}"
    edge = EdgeVoice("nl-NL-FennaNeural", proxy=proxy, connect_timeout=2, receive_timeout=2)
    t0 = time.monotonic()
    with pytest.raises(VoiceError) as caught:
        await edge.synthesize(_sentence("Goedemorgen allemaal.", "nl"))
    assert time.monotonic() - t0 < 2.0
    assert caught.value.retryable and "nl-NL-FennaNeural" in str(caught.value)

    voice = FallbackVoice(edge, EspeakVoice("espeak-nl-f"), timeout=5.0)
    chunk = await voice.synthesize(_sentence("Goedemorgen allemaal.", "nl"))
    await voice.aclose()
    assert chunk.voice == "espeak-nl-f" and chunk.duration_ms > 500
    assert voice.failures == 1 and voice.last_error is not None


def _mp3(pcm: npt.NDArray[np.int16], rate: int) -> bytes:
    """Encode like the Edge service does: 24 kHz mono MP3."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = 48_000
        frame_size = 1152
        for i in range(0, len(pcm), frame_size):
            part = pcm[i : i + frame_size]
            frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


class _FakeCommunicate:
    """edge-tts's Communicate at its own interface: MP3 chunks and WordBoundary events."""

    mp3 = b""

    def __init__(self, text: str, voice: str, **kw: Any) -> None:
        assert kw["boundary"] == "WordBoundary"

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "WordBoundary", "offset": 1_000_000, "duration": 3_500_000, "text": "Hallo"}
        for i in range(0, len(self.mp3), 4096):
            yield {"type": "audio", "data": self.mp3[i : i + 4096]}
        yield {"type": "WordBoundary", "offset": 5_000_000, "duration": 4_000_000, "text": "daar"}


async def test_edge_decodes_mp3_and_converts_word_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_tts

    from llm_server import speech_pcm

    src = speech_pcm(1.2, 24_000)
    _FakeCommunicate.mp3 = _mp3(src, 24_000)
    monkeypatch.setattr(edge_tts, "Communicate", _FakeCommunicate)
    chunk = await EdgeVoice("nl-NL-FennaNeural").synthesize(_sentence("Hallo daar.", "nl"))

    assert chunk.pcm.dtype == np.int16 and chunk.voice == "edge:nl-NL-FennaNeural"
    assert abs(chunk.duration_ms - 1200) < 120  # MP3 adds encoder padding
    assert [(w.word, w.start_ms, w.end_ms) for w in chunk.words] == [
        ("Hallo", 100, 450),
        ("daar", 500, 900),
    ]
    assert _rms(chunk.pcm, 0.25, 0.3) > 1000  # audible after decoding
    assert np.array_equal(decode_mp3(_FakeCommunicate.mp3), decode_mp3(_FakeCommunicate.mp3))


# --- the registry -----------------------------------------------------------------------------


def test_registry_lists_network_voices_online_and_never_as_defaults() -> None:
    voices = {v.name: v for v in list_voices()}
    for name in ("openai:alloy", "openai:nova", "edge:nl-NL-FennaNeural", "edge:en-US-AriaNeural"):
        assert voices[name].offline is False and voices[name].gives_phonemes is False
    assert voices["edge:zh-CN-XiaoxiaoNeural"].languages == ("zh",)
    assert set(voices["openai:alloy"].languages) >= {"en", "nl", "zh"}
    assert all(voices[n].offline for n in voices if n.startswith("espeak-"))
    for lang in ("en", "nl", "zh"):
        assert default_voice_for(lang).startswith("espeak-")


async def test_create_voice_openai_alloy_speaks_through_the_local_server(
    server: ScriptedLlmServer,
) -> None:
    net = NetworkVoiceOptions(openai_base_url=server.base_url, openai_api_key=KEY, timeout_s=5)
    assert KEY not in repr(net)
    voice = create_voice("openai:alloy", lang="nl", network=net)
    assert isinstance(voice, FallbackVoice)
    assert voice.info.name == "openai:alloy" and voice.fallback.info.name == "espeak-nl-f"
    chunk = await voice.synthesize(_sentence("Goedemorgen allemaal.", "nl"))
    await voice.aclose()
    assert chunk.voice == "openai:alloy" and voice.failures == 0


def test_create_voice_edge_gets_the_espeak_voice_of_its_language() -> None:
    voice = create_voice("edge:zh-CN-XiaoxiaoNeural", lang="en")
    assert isinstance(voice, FallbackVoice)
    assert voice.fallback.info.name == "espeak-zh-f"
    unlisted = create_voice("edge:en-AU-NatashaNeural")
    assert isinstance(unlisted, FallbackVoice) and unlisted.info.languages == ("en",)
    with pytest.raises(UnknownNameError):
        create_voice("openai:")
    with pytest.raises(UnknownNameError):
        create_voice("edge:not a voice")


# --- a whole render ---------------------------------------------------------------------------


def test_cli_render_with_openai_voice_moves_the_mouth_with_the_audio(
    server: ScriptedLlmServer, tmp_path: Path
) -> None:
    """``avatarcast render --voice openai:alloy`` with the endpoint from the environment."""
    out = tmp_path / "openai.mp4"
    env = {
        **os.environ,
        "AVATARCAST_TTS__BASE_URL": server.base_url,
        "AVATARCAST_TTS__API_KEY": KEY,
        "AVATARCAST_TTS__TIMEOUT_S": "5",
    }
    args = ["render", "--catalog", str(DEMO), "--duration", "4", "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", *args, "--voice", "openai:alloy", "-v"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr
    assert server.speech_requests and "voice openai:alloy failed" not in r.stderr

    info = ffprobe(out)
    v, a = stream_of(info, "video"), stream_of(info, "audio")
    assert (v["codec_name"], int(v["nb_frames"])) == ("h264", 100)
    assert (a["codec_name"], int(a["sample_rate"])) == ("aac", SAMPLE_RATE)

    pack = load_pack(list_packs()[0])
    box = SpriteAvatarRenderer(pack, frame_width=1280, frame_height=720).mouth_box()
    mouth = np.array([mouth_openness(y, box) for y in decoded_luma(out)])
    energy = _frame_energy(out, fps=25)
    n = min(len(mouth), len(energy))
    speaking = energy[:n] > 0.25 * energy.max()
    assert 10 < speaking.sum() < n - 5  # bursts and gaps, not one level
    # energy-driven: the mouth is open more while the bursts sound than in the gaps between
    assert mouth[:n][speaking].mean() > mouth[:n][~speaking].mean() + 0.02
    assert np.corrcoef(mouth[:n], energy[:n])[0, 1] > 0.3


def _frame_energy(path: Path, *, fps: int) -> npt.NDArray[np.float64]:
    with av.open(str(path)) as c:
        pcm = np.concatenate(
            [f.to_ndarray().astype(np.float64).mean(axis=0) for f in c.decode(audio=0)]
        )
    per = SAMPLE_RATE // fps
    frames = pcm[: len(pcm) // per * per].reshape(-1, per)
    rms: npt.NDArray[np.float64] = np.sqrt((frames**2).mean(axis=1))
    return rms
