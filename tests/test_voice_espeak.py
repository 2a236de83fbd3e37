"""The offline espeak voice: real synthesis, timings checked against the audio itself."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pytest

from avatarcast.avatar.visemes import is_pause, is_voiced_open, viseme_for
from avatarcast.errors import UnknownNameError
from avatarcast.frames import SAMPLE_RATE, Sentence, SpeechChunk
from avatarcast.voice import espeak
from avatarcast.voice.espeak import EspeakVoice
from avatarcast.voice.registry import create_voice, default_voice_for, list_voices

EN = "Hello there. This air fryer holds five litres, and it costs fifty-nine euros!"
NL = "Goedemorgen allemaal. Deze airfryer kost negenenvijftig euro, bestel nu!"


def _sentence(text: str, lang: str) -> Sentence:
    return Sentence(text=text, lang=lang, source="template")


def _rms(pcm: npt.NDArray[np.int16], start_ms: float, end_ms: float) -> float:
    a = int(start_ms * SAMPLE_RATE / 1000)
    b = int(end_ms * SAMPLE_RATE / 1000)
    seg = pcm[a:b].astype(np.float64)
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


def _pauses(chunk: SpeechChunk, min_ms: int) -> list[tuple[int, int]]:
    """Runs of pause phonemes at least ``min_ms`` long, as (start, end) in ms."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for p in chunk.phonemes:
        if is_pause(p.phoneme):
            start = p.start_ms if start is None else start
        elif start is not None:
            runs.append((start, p.start_ms))
            start = None
    if start is not None:
        runs.append((start, chunk.duration_ms))
    return [(a, b) for a, b in runs if b - a >= min_ms]


def _vowels(chunk: SpeechChunk, lang: str) -> list[tuple[int, int]]:
    return [
        (p.start_ms, p.end_ms)
        for p in chunk.phonemes
        if is_voiced_open(viseme_for(p.phoneme, lang)) and p.end_ms - p.start_ms >= 40
    ]


@pytest.fixture(scope="module")
def en_chunk() -> SpeechChunk:
    return EspeakVoice("espeak-en-m").synthesize_blocking(_sentence(EN, "en"))


@pytest.fixture(scope="module")
def nl_chunk() -> SpeechChunk:
    return EspeakVoice("espeak-nl-f").synthesize_blocking(_sentence(NL, "nl"))


@pytest.mark.parametrize("which", ["en", "nl"])
def test_audio_is_48k_mono_int16_with_speech(
    which: str, en_chunk: SpeechChunk, nl_chunk: SpeechChunk
) -> None:
    chunk = en_chunk if which == "en" else nl_chunk
    assert chunk.pcm.dtype == np.int16
    assert chunk.pcm.ndim == 1
    assert 2000 < chunk.duration_ms < 10000
    assert _rms(chunk.pcm, 0, chunk.duration_ms) > 800
    # 48 kHz, not 22.05 kHz relabelled: espeak's voice has energy up to ~5 kHz only, and the
    # resampled spectrum above 11 kHz must be (near) empty.
    power = np.abs(np.fft.rfft(chunk.pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(chunk.pcm), 1 / SAMPLE_RATE)
    assert power[freqs > 11500].sum() < 1e-4 * power.sum()
    assert power[(freqs > 300) & (freqs < 4000)].sum() > 0.5 * power.sum()


@pytest.mark.parametrize("which", ["en", "nl"])
def test_timings_increase_and_fit_the_audio(
    which: str, en_chunk: SpeechChunk, nl_chunk: SpeechChunk
) -> None:
    chunk = en_chunk if which == "en" else nl_chunk
    ph = chunk.phonemes
    assert len(ph) > 20
    starts = [p.start_ms for p in ph]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(p.end_ms > p.start_ms for p in ph)
    assert all(a.end_ms == b.start_ms for a, b in pairwise(ph))
    assert ph[-1].end_ms == chunk.duration_ms
    words = chunk.words
    assert len(words) >= 8
    assert [w.start_ms for w in words] == sorted(w.start_ms for w in words)
    assert all(0 <= w.start_ms <= w.end_ms <= chunk.duration_ms for w in words)


def test_word_text_comes_from_the_sentence(en_chunk: SpeechChunk) -> None:
    words = [w.word for w in en_chunk.words]
    assert words[:2] == ["Hello", "there"]
    assert "fifty-nine" in words
    assert words[-1] == "euros"


@pytest.mark.parametrize("which,lang", [("en", "en"), ("nl", "nl")])
def test_phoneme_times_are_where_the_sound_is(
    which: str, lang: str, en_chunk: SpeechChunk, nl_chunk: SpeechChunk
) -> None:
    chunk = en_chunk if which == "en" else nl_chunk
    loud = _rms(chunk.pcm, 0, chunk.duration_ms)
    vowels = _vowels(chunk, lang)
    pauses = _pauses(chunk, 150)
    assert len(vowels) >= 8 and pauses, "the text has vowels and a sentence pause"
    # The first 40 ms of every vowel is voiced...
    onset = [_rms(chunk.pcm, a + 5, min(b, a + 40)) for a, b in vowels]
    assert min(onset) > 0.25 * loud
    # ...and the inside of every pause is near silence.
    for a, b in pauses:
        assert _rms(chunk.pcm, a + 15, b - 15) < 0.03 * loud
    # Timings a tenth of a second late would put some vowel onsets into the pauses.
    late = [_rms(chunk.pcm, a + 105, a + 140) for a, _ in vowels]
    assert min(late) < 0.25 * loud


def test_same_text_gives_identical_pcm(en_chunk: SpeechChunk) -> None:
    other = EspeakVoice("espeak-nl-m").synthesize_blocking(_sentence(NL, "nl"))
    again = EspeakVoice("espeak-en-m").synthesize_blocking(_sentence(EN, "en"))
    assert len(other.pcm) != len(again.pcm)
    assert again.pcm.tobytes() == en_chunk.pcm.tobytes()
    assert again.phonemes == en_chunk.phonemes
    female = EspeakVoice("espeak-en-f")
    a = female.synthesize_blocking(_sentence(EN, "en"))
    b = female.synthesize_blocking(_sentence(EN, "en"))
    assert a.pcm.tobytes() == b.pcm.tobytes()
    assert a.pcm.tobytes() != en_chunk.pcm.tobytes()


def test_chinese_voice_speaks() -> None:
    chunk = create_voice("espeak-zh-f").synthesize_blocking(
        _sentence("你好，这个空气炸锅很好用。", "zh")
    )
    assert chunk.duration_ms > 1500
    assert _rms(chunk.pcm, 0, chunk.duration_ms) > 500
    assert chunk.words[0].word == "你好"


def test_unknown_voice_names_the_value() -> None:
    with pytest.raises(UnknownNameError, match="espeak-xx-q") as err:
        create_voice("espeak-xx-q")
    assert err.value.name == "espeak-xx-q"
    assert "espeak-en-f" in str(err.value)
    with pytest.raises(UnknownNameError, match="klingon"):
        default_voice_for("klingon")
    with pytest.raises(UnknownNameError):
        EspeakVoice("nope")


def test_registry_lists_and_resolves_defaults() -> None:
    names = {v.name for v in list_voices()}
    assert {"espeak-en-f", "espeak-en-m", "espeak-nl-f", "espeak-nl-m"} <= names
    assert all(v.offline and v.gives_phonemes for v in list_voices() if v.engine == "espeak")
    assert create_voice("default", lang="nl").info.languages == ("nl",)
    assert default_voice_for("en-GB").startswith("espeak-en")


async def test_synthesis_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = espeak._Library.get()
    real = lib.synthesize
    threads: list[int] = []

    def spy(text: str, **kw: object) -> espeak._Raw:
        threads.append(threading.get_ident())
        time.sleep(0.2)  # a slow synthesis must not stall the loop
        return real(text, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(lib, "synthesize", spy)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        for _ in range(30):
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    voice = EspeakVoice("espeak-en-m")
    async with asyncio.TaskGroup() as tg:
        ticker = tg.create_task(tick())
        chunk = await voice.synthesize(_sentence("Hello there.", "en"))
        await ticker
    assert threads and threads[0] != threading.get_ident()
    assert max(gaps) < 0.1
    assert chunk.duration_ms > 300
    await voice.aclose()


LONG = (
    "This waterproof jacket keeps you dry on every hike, and it folds into its own pocket for "
    "the trip home. It weighs only three hundred grams, costs eighty-nine euros ninety-five, "
    "and comes in five colours: red, blue, green, black and a sandy yellow."
)


def _counted_callbacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count espeak's calls into Python (each one takes the GIL) from here on."""
    lib = espeak._Library.get()
    real = lib._on_synth
    calls: list[int] = []

    def counting(wav: ctypes._Pointer[ctypes.c_short], n: int, events: ctypes.Array) -> int:  # type: ignore[type-arg]
        calls.append(n)
        return real(wav, n, events)  # type: ignore[arg-type]

    monkeypatch.setattr(lib, "_callback", espeak._SynthCallback(counting))
    return calls


def test_a_sentence_calls_into_python_about_once_a_second_of_sound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each call takes the GIL: with espeak's default 60 ms blocks this 15.8 s sentence made 270
    calls, now 22."""
    calls = _counted_callbacks(monkeypatch)
    chunk = EspeakVoice("espeak-en-m").synthesize_blocking(_sentence(LONG, "en"))
    seconds = chunk.duration_ms / 1000
    assert seconds > 8
    assert len(calls) <= 2 * seconds, (len(calls), seconds)


@pytest.mark.parametrize(
    ("voice", "lang", "text"),
    [
        ("espeak-en-m", "en", LONG),
        ("espeak-nl-f", "nl", NL),
        ("espeak-zh-m", "zh", "这件夹克防水。"),
    ],
)
def test_the_block_size_leaves_sound_and_timings_as_they_were(
    monkeypatch: pytest.MonkeyPatch, voice: str, lang: str, text: str
) -> None:
    """The same samples and events as with espeak's own 60 ms blocks (``_BUFFER_MS = 0``)."""
    now = EspeakVoice(voice).synthesize_blocking(_sentence(text, lang))
    monkeypatch.setattr(espeak, "_BUFFER_MS", 0)
    calls = _counted_callbacks(monkeypatch)
    before = EspeakVoice(voice).synthesize_blocking(_sentence(text, lang))
    assert len(calls) > now.duration_ms / 100  # the old blocks really were in use
    assert np.array_equal(now.pcm, before.pcm)
    assert now.phonemes == before.phonemes
    assert now.words == before.words


async def test_synthesis_runs_at_the_frame_clocks_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not at background priority: a low-priority thread that takes the GIL holds up the
    stream's frame threads whenever it waits for a CPU (benchmarks/README.md, twin4)."""
    lib = espeak._Library.get()
    real = lib.synthesize
    nice: list[int] = []

    def spy(text: str, **kw: object) -> espeak._Raw:
        nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(text, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(lib, "synthesize", spy)
    voice = EspeakVoice("espeak-en-m")
    await voice.synthesize(_sentence("Hello there.", "en"))
    await voice.aclose()
    assert nice == [os.getpriority(os.PRIO_PROCESS, threading.get_native_id())]


def test_event_struct_matches_the_library() -> None:
    assert ctypes.sizeof(espeak._Event) == 40  # 64-bit Linux layout of espeak_EVENT
    raw = espeak._Library.get().synthesize("Hello there.", voice="en-us", rate=165, pitch=None)
    total = sum(len(b) for b in raw.pcm) // 2
    samples = [s for s, _ in raw.phonemes]
    assert raw.sample_rate == 22050
    assert samples == sorted(samples) and 0 <= samples[0] and samples[-1] <= total
    assert samples[-1] > 0.9 * total  # the last pause starts near the end of the audio
    assert [name for _, name in raw.phonemes][:4] == ["h", "@", "l", "'oU"]
