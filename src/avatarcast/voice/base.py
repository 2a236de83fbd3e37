"""What a voice is: a sentence in, 48 kHz mono audio with phoneme timings out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from avatarcast.errors import VoiceError
from avatarcast.frames import Sentence, SpeechChunk


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceInfo:
    name: str
    engine: str
    languages: tuple[str, ...]
    gives_phonemes: bool
    offline: bool


class Voice(Protocol):
    """Synthesises one sentence. CPU work runs off the event loop."""

    info: VoiceInfo

    async def synthesize(self, sentence: Sentence) -> SpeechChunk: ...

    async def aclose(self) -> None: ...


def speakable(info: VoiceInfo, sentence: Sentence, *, closed: bool) -> str:
    """The text a network voice should send, or a VoiceError if there is nothing to say."""
    if closed:
        raise VoiceError(f"voice {info.name!r} is closed")
    text = sentence.speech_text.strip()
    if not text:
        raise VoiceError(f"voice {info.name!r} was given an empty sentence")
    return text
