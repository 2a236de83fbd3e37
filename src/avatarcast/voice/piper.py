"""Piper: an offline neural voice from a user-supplied model (``piper:/path/voice.onnx``).

The model and its ``voice.onnx.json`` config are the merchant's (a Piper voice trained on
their host, or one they chose); nothing is downloaded. ``piper-tts`` is an install extra
(``avatarcast[neural]``), imported when a stream first asks for the voice. Piper's VITS models
decide every phoneme's duration; with the ``onnx`` package installed the model is patched in
memory to return those durations, so the mouth gets the voice's own phoneme timings
(IPA, renamed to espeak mnemonics by ``voice.ipa``). A model that hides them falls back on
espeak's timings stretched onto the audio (``voice.timing``). One synthesis at a time per
voice, in a low-priority thread with one onnxruntime thread.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from avatarcast.errors import ConfigError, VoiceError
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.threads import in_background, os_thread_named
from avatarcast.voice.audio import to_48k
from avatarcast.voice.base import VoiceInfo
from avatarcast.voice.espeak import EspeakVoice
from avatarcast.voice.ipa import timed_from_ipa
from avatarcast.voice.timing import stretch_timings

__all__ = ["PREFIX", "PiperVoice", "piper_language"]

PREFIX = "piper:"


def _config(model: Path) -> dict[str, Any]:
    path = Path(f"{model}.json")
    if not model.is_file():
        raise ConfigError(f"piper voice model {model} does not exist", field="voice")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"piper voice {model} has no config {path.name} beside it", field="voice"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"piper voice config {path} is not readable JSON: {exc}") from exc
    for key in ("audio", "espeak", "phoneme_id_map", "num_symbols"):
        if key not in data:
            raise ConfigError(f"piper voice config {path} has no {key!r}", field="voice")
    return dict(data)


def piper_language(model: Path) -> str:
    """The voice's language (``en``, ``nl``...) from its config's espeak voice."""
    data = _config(model)
    code = str(data.get("language", {}).get("code", "")) or str(data["espeak"].get("voice", ""))
    return code.replace("_", "-").split("-")[0].lower() or "en"


class PiperVoice:
    """A ``Voice`` speaking through a Piper model; ``guide`` gives timings when it cannot."""

    def __init__(self, model: str | Path, *, guide: EspeakVoice | None = None) -> None:
        self._path = Path(model)
        self._config = _config(self._path)
        lang = piper_language(self._path)
        self.info = VoiceInfo(
            name=f"{PREFIX}{self._path}",
            engine="piper",
            languages=(lang,),
            gives_phonemes=True,
            offline=True,
        )
        self._guide = guide
        self._voice: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def _load(self) -> Any:
        try:
            import onnxruntime
            from piper import PiperVoice as Engine
            from piper.config import PiperConfig
        except ImportError as exc:
            raise ConfigError(
                "piper voices need piper-tts: pip install 'avatarcast[neural]'", field="voice"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                _with_durations(self._path), options, providers=["CPUExecutionProvider"]
            )
            return Engine(session=session, config=PiperConfig.from_dict(self._config))
        except Exception as exc:  # onnxruntime and piper raise untyped errors
            raise VoiceError(f"piper cannot load {self._path}: {exc}") from exc

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        if self._closed:
            raise VoiceError(f"voice {self.info.name!r} is closed")
        if not sentence.speech_text.strip():
            raise VoiceError(f"voice {self.info.name!r} was given an empty sentence")
        return await in_background(self.synthesize_blocking, sentence)

    def synthesize_blocking(self, sentence: Sentence) -> SpeechChunk:
        with self._lock, os_thread_named("voice"):
            if self._voice is None:
                self._voice = self._load()
            pcm, spans, rate = self._run(sentence.speech_text)
        pcm48 = to_48k(pcm, rate)
        if spans is not None:
            phonemes = timed_from_ipa(spans)
        elif self._guide is not None:
            phonemes, _ = stretch_timings(self._guide.synthesize_blocking(sentence), pcm48)
        else:
            phonemes = []
        return SpeechChunk(pcm=pcm48, sentence=sentence, phonemes=phonemes, voice=self.info.name)

    def _run(
        self, text: str
    ) -> tuple[npt.NDArray[np.int16], list[tuple[str, int, int]] | None, int]:
        parts: list[npt.NDArray[np.int16]] = []
        spans: list[tuple[str, int, int]] | None = []
        rate = int(self._config["audio"]["sample_rate"])
        at = 0
        try:
            for chunk in self._voice.synthesize(text, include_alignments=True):
                rate = int(chunk.sample_rate)
                audio = np.asarray(chunk.audio_int16_array, dtype=np.int16)
                if chunk.phoneme_alignments is None:
                    spans = None
                elif spans is not None:
                    t = at
                    for a in chunk.phoneme_alignments:
                        n = int(a.num_samples)
                        spans.append((str(a.phoneme), t * 1000 // rate, (t + n) * 1000 // rate))
                        t += n
                parts.append(audio)
                at += len(audio)
        except Exception as exc:  # onnxruntime raises untyped errors
            raise VoiceError(f"piper failed to speak {text[:40]!r}: {exc}") from exc
        if not parts:
            raise VoiceError(f"piper said nothing for {text[:40]!r}")
        return np.concatenate(parts), spans, rate

    async def aclose(self) -> None:
        self._closed = True


def _with_durations(path: Path) -> bytes | str:
    """The model with its phoneme durations (VITS's ``Ceil`` tensor) as an extra output, as
    Piper's own alignment patch does; the plain path when ``onnx`` is missing or the model
    has no such tensor (timings then come from espeak)."""
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        return str(path)
    model = onnx.load(str(path))
    try:
        add_alignment_output(model)
    except ValueError:
        return str(path)
    data: bytes = model.SerializeToString()
    return data
