"""The offline voice: espeak-ng through its C API, with phoneme and word timings.

espeak-ng keeps one global synthesiser per process and is not thread-safe, so every call into
the library goes through one lock, and synthesis runs in a worker thread. Timings come from the
library's own events (their ``sample`` field counts output samples), so a phoneme reported at
``t`` ms is where its sound is in the returned audio. The audio is not trimmed: espeak starts
speaking within a few milliseconds and ends with a short pause of its own.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from avatarcast.errors import UnknownNameError, VoiceError
from avatarcast.frames import SAMPLE_RATE, Sentence, SpeechChunk, TimedPhoneme, TimedWord
from avatarcast.threads import in_thread, os_thread_named
from avatarcast.voice.base import VoiceInfo
from avatarcast.voice.resample import resample_poly_int16

__all__ = ["ESPEAK_VOICES", "EspeakSpec", "EspeakVoice", "espeak_voice_infos"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3

#: milliseconds of sound per call of the synth callback. Each call takes the GIL, and espeak's
#: default (0: 60 ms) made 105 calls for a 6.2 s sentence; at 1000 ms it makes 9. Fewer calls
#: matter because the thread that makes them may wait for a CPU while it holds the GIL, and the
#: stream's frame threads then wait for it (benchmarks/README.md, twin4). The samples and the
#: events come out the same (tests/test_voice_espeak.py); at 2000 ms they did not (a 17 s
#: sentence came out 3 ms longer: espeak's 16-bit-sized buffers?), so it stays at 1000.
_BUFFER_MS = 1000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7

_STRESS_MARKS = "'\",%="


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h; 40 bytes on 64-bit Linux (pointer at offset 24)."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms, truncated
        ("sample", ctypes.c_int),  # output samples before the event: the precise position
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # union: number / name pointer / phoneme string
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(slots=True)
class _Raw:
    """What one ``espeak_Synth`` call produced, at the library's own sample rate."""

    sample_rate: int
    pcm: list[bytes] = field(default_factory=list)
    phonemes: list[tuple[int, str]] = field(default_factory=list)  # (sample, mnemonic)
    words: list[tuple[int, int]] = field(default_factory=list)  # (sample, 0-based char index)


class _Library:
    """The process's espeak-ng, behind one lock.

    espeak-ng keeps state between utterances in C statics (pitch flutter, wave phase), so the
    same text would not give the same samples twice. Each synthesis therefore loads a private
    copy of the shared library afresh and unloads it after: a few milliseconds for audio that
    is byte-identical whatever was spoken before, and globals no other user of espeak shares.
    libc's ``rand()`` (breath noise) is seeded before each synthesis for the same reason.

    Choosing a voice makes espeak-ng list every voice file into an array that
    ``espeak_Terminate`` keeps; once the copy is unloaded nobody owns it, 2-3 KB a sentence
    (~2 MB an hour of talk, twice a stream's whole memory budget of 1 MB/h). So the list is
    asked for first, which makes ``SetVoiceByName`` reuse it, and freed after the unload.
    Breathy variants (``+f2``, ``+f3``, ``+f5``) still differ run to run in espeak-ng 1.52
    (they depend on heap contents) and echoing ones (``+f4``) fill pauses with sound, so no
    voice here uses either.
    """

    _lock = threading.Lock()
    _instance: _Library | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise VoiceError("espeak voices need the espeakng-loader package") from exc
        self._path = _private_copy(str(espeakng_loader.get_library_path()))
        self._data = str(espeakng_loader.get_data_path()).encode()
        self._libc = ctypes.CDLL(None)
        self._libc.srand.argtypes = [ctypes.c_uint]
        self._libc.srand.restype = None
        self._libc.free.argtypes = [ctypes.c_void_p]
        self._libc.free.restype = None
        self._job: _Raw | None = None
        self._callback = _SynthCallback(self._on_synth)

    @classmethod
    def get(cls) -> _Library:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Library()
            return cls._instance

    def _on_synth(
        self, wav: ctypes._Pointer[ctypes.c_short], n: int, events: ctypes._Pointer[_Event]
    ) -> int:
        job = self._job
        if job is None:
            return 1  # nobody asked: abort
        if n > 0 and wav:
            job.pcm.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                job.phonemes.append((ev.sample, ev.id.decode("utf-8", "replace")))
            elif ev.type == _EVENT_WORD:
                job.words.append((ev.sample, ev.text_position - 1))
            i += 1
        return 0

    def synthesize(self, text: str, *, voice: str, rate: int, pitch: int | None) -> _Raw:
        """Speak ``text``; returns the samples and events at ``_Raw.sample_rate``."""
        data = text.encode("utf-8")
        with self._lock:
            lib = ctypes.CDLL(self._path)
            voices: int | None = None  # espeak-ng's voice list, ours to free after the unload
            try:
                _declare(lib)
                options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
                sample_rate = lib.espeak_Initialize(
                    _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, self._data, options
                )
                if sample_rate <= 0:
                    raise VoiceError(f"espeak-ng failed to initialise (returned {sample_rate})")
                lib.espeak_SetSynthCallback(self._callback)
                voices = lib.espeak_ListVoices(None)
                if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise VoiceError(f"espeak-ng has no voice {voice!r}")
                lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
                if pitch is not None:
                    lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
                self._job = job = _Raw(sample_rate=sample_rate)
                self._libc.srand(1)
                err = lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
            finally:
                self._job = None
                lib.espeak_Terminate()
                _dlclose(lib._handle)
                del lib
                if voices:
                    self._libc.free(voices)
        if err != 0:
            raise VoiceError(f"espeak-ng failed to speak {text[:40]!r} (error {err})")
        return job


def _private_copy(library: str) -> str:
    """A path to a copy of ``library`` that only this process loads, and that nothing has to
    remove.

    The copy lives in an anonymous memory file (``memfd_create``), opened by its
    ``/proc/self/fd`` path: the kernel frees it with the process however the process ends. A
    copy in a temporary folder removed at exit stayed behind whenever a worker was killed
    (SIGKILL, a crash, ``os._exit``): 83 folders of 660 KB in /tmp after 90 minutes of this
    project's tests, and one per killed worker on a server that runs for months. Without
    ``memfd_create`` (not Linux) the folder is still the fallback.
    """
    try:
        fd = os.memfd_create("avatarcast-espeak", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        folder = tempfile.mkdtemp(prefix="avatarcast-espeak-")
        atexit.register(shutil.rmtree, folder, True)
        path = os.path.join(folder, "libespeak-ng.so")
        shutil.copyfile(library, path)
        return path
    with open(library, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
        shutil.copyfileobj(src, dst)
    return f"/proc/self/fd/{fd}"  # open for the life of the process: the path stays valid


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.c_void_p
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int


def _dlclose(handle: int) -> None:
    import _ctypes

    _ctypes.dlclose(handle)


@dataclass(frozen=True, slots=True)
class EspeakSpec:
    """An avatarcast voice name's espeak voice (``name+variant``) and language."""

    espeak_name: str
    lang: str


ESPEAK_VOICES: dict[str, EspeakSpec] = {
    "espeak-en-m": EspeakSpec("en-us", "en"),
    "espeak-en-f": EspeakSpec("en-us+f1", "en"),
    "espeak-en-gb-m": EspeakSpec("en", "en"),
    "espeak-en-gb-f": EspeakSpec("en+belinda", "en"),
    "espeak-nl-m": EspeakSpec("nl", "nl"),
    "espeak-nl-f": EspeakSpec("nl+f1", "nl"),
    "espeak-zh-m": EspeakSpec("cmn", "zh"),
    "espeak-zh-f": EspeakSpec("cmn+f1", "zh"),
}


def espeak_voice_infos() -> list[VoiceInfo]:
    return [_info(name, spec) for name, spec in ESPEAK_VOICES.items()]


def _info(name: str, spec: EspeakSpec) -> VoiceInfo:
    return VoiceInfo(
        name=name, engine="espeak", languages=(spec.lang,), gives_phonemes=True, offline=True
    )


class EspeakVoice:
    """A ``Voice`` speaking through espeak-ng. The same text always gives the same samples."""

    def __init__(self, name: str, *, rate: int = 165, pitch: int | None = None) -> None:
        spec = ESPEAK_VOICES.get(name)
        if spec is None:
            raise UnknownNameError("voice", name, list(ESPEAK_VOICES))
        if not 80 <= rate <= 450:
            raise VoiceError(f"espeak rate {rate} words/minute is outside 80..450")
        if pitch is not None and not 0 <= pitch <= 99:
            raise VoiceError(f"espeak pitch {pitch} is outside 0..99")
        self.info = _info(name, spec)
        self._spec = spec
        self._rate = rate
        self._pitch = pitch
        self._closed = False

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        if self._closed:
            raise VoiceError(f"voice {self.info.name!r} is closed")
        # at the frame clock's priority: ~10-16 ms of CPU a sentence, and a low-priority thread
        # that takes the GIL holds up its own stream's frames (benchmarks/README.md, twin4)
        return await in_thread(self.synthesize_blocking, sentence)

    def synthesize_blocking(self, sentence: Sentence) -> SpeechChunk:
        """The work of ``synthesize``, for callers already off the event loop."""
        text = _clean(sentence.speech_text)
        with os_thread_named("voice"):
            raw = _Library.get().synthesize(
                text, voice=self._spec.espeak_name, rate=self._rate, pitch=self._pitch
            )
        native = np.frombuffer(b"".join(raw.pcm), dtype=np.int16)
        pcm = _resample(native, raw.sample_rate)
        end_ms = len(pcm) * 1000 // SAMPLE_RATE
        phonemes = _timed_phonemes(raw.phonemes, raw.sample_rate, end_ms)
        words = _timed_words(raw.words, text, phonemes, raw.sample_rate, end_ms)
        return SpeechChunk(
            pcm=pcm, sentence=sentence, phonemes=phonemes, words=words, voice=self.info.name
        )

    async def aclose(self) -> None:
        self._closed = True  # the library itself lives as long as the process


def _clean(text: str) -> str:
    """Text espeak can take as one C string, without control characters."""
    return "".join(" " if (ord(c) < 32 or c == "\x7f") else c for c in text).strip()


def _resample(native: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    if len(native) == 0:
        return np.zeros(0, np.int16)
    if rate == SAMPLE_RATE:
        return native.copy()
    return resample_poly_int16(native, SAMPLE_RATE, rate)


def _ms(sample: int, rate: int) -> int:
    return sample * 1000 // rate


def _strip_stress(mnemonic: str) -> str:
    return mnemonic.lstrip(_STRESS_MARKS)


def _is_pause(mnemonic: str) -> bool:
    return _strip_stress(mnemonic).startswith("_")


def _timed_phonemes(events: list[tuple[int, str]], rate: int, end_ms: int) -> list[TimedPhoneme]:
    """Phonemes with an end, dropping the zero-length ones espeak reports at a boundary."""
    starts = [(min(_ms(s, rate), end_ms), name) for s, name in events if name]
    out: list[TimedPhoneme] = []
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else end_ms
        if end > start:
            out.append(TimedPhoneme(phoneme=name, start_ms=start, end_ms=end))
    return out


def _timed_words(
    events: list[tuple[int, int]],
    text: str,
    phonemes: list[TimedPhoneme],
    rate: int,
    end_ms: int,
) -> list[TimedWord]:
    """Words from espeak's WORD events.

    A word's text runs to the next space or the next word (so "fifty-nine", which espeak
    reports as "fifty", stays whole); its time ends with its last sounding phoneme, not the
    pause after it.
    """
    out: list[TimedWord] = []
    for i, (sample, pos) in enumerate(events):
        nxt_pos = events[i + 1][1] if i + 1 < len(events) else len(text)
        nxt_ms = min(_ms(events[i + 1][0], rate), end_ms) if i + 1 < len(events) else end_ms
        word = _word_at(text, pos, nxt_pos)
        start = min(_ms(sample, rate), end_ms)
        if not word:
            continue
        sounding = [
            p for p in phonemes if start <= p.start_ms < nxt_ms and not _is_pause(p.phoneme)
        ]
        end = min(sounding[-1].end_ms, nxt_ms) if sounding else nxt_ms
        out.append(TimedWord(word=word, start_ms=start, end_ms=max(end, start)))
    return out


def _word_at(text: str, pos: int, nxt_pos: int) -> str:
    span = text[pos:nxt_pos].strip()
    word = span.split(maxsplit=1)[0] if span else ""
    start, end = 0, len(word)
    while start < end and _is_edge(word[start]):
        start += 1
    while end > start and _is_edge(word[end - 1]):
        end -= 1
    return word[start:end]


def _is_edge(ch: str) -> bool:
    """Punctuation and markup that ends a word rather than belongs to it."""
    cat = unicodedata.category(ch)
    return cat.startswith("P") or cat in ("Sm", "Sk")
