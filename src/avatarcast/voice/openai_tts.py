"""OpenAI text-to-speech (or any server with the same ``/v1/audio/speech`` route).

It gives no phoneme timings, so the animator follows the audio's energy. Errors come back as
:class:`VoiceError` that say whether a retry can help; the key never appears in them.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from avatarcast.errors import VoiceError
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.models import (
    ModelClient,
    ModelEndpoint,
    ModelError,
    OpenAiModelClient,
    RetryPolicy,
)
from avatarcast.models.client import SpeechFormat
from avatarcast.voice.audio import decode_pcm_s16le, decode_wav
from avatarcast.voice.base import VoiceInfo, speakable

__all__ = ["OPENAI_PCM_RATE", "OPENAI_VOICES", "OpenAiTtsVoice", "openai_voice_infos"]

OPENAI_PCM_RATE = 24_000
"""OpenAI's ``pcm`` format: raw 24 kHz signed 16-bit little-endian mono."""

OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)

#: OpenAI voices speak whatever language the text is in.
_LANGUAGES = ("en", "nl", "zh")

ResponseFormat = SpeechFormat


def openai_voice_infos() -> list[VoiceInfo]:
    return [_info(f"openai:{v}") for v in OPENAI_VOICES]


def _info(name: str) -> VoiceInfo:
    return VoiceInfo(
        name=name, engine="openai", languages=_LANGUAGES, gives_phonemes=False, offline=False
    )


class OpenAiTtsVoice:
    """A ``Voice`` that asks an OpenAI-compatible speech endpoint for each sentence."""

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        base_url: str | None = None,
        api_key: str = "",
        timeout: float = 15.0,
        response_format: ResponseFormat = "pcm",
        client: ModelClient | None = None,
    ) -> None:
        if response_format not in ("pcm", "wav"):
            raise VoiceError(f"openai response_format {response_format!r} is not pcm or wav")
        if timeout <= 0:
            raise VoiceError(f"openai tts timeout {timeout} s is not positive")
        self.info = _info(f"openai:{voice}")
        self._model = model
        self._voice = voice
        self._format: ResponseFormat = response_format
        endpoint = ModelEndpoint(base_url=base_url or "", api_key=api_key, timeout=timeout)
        # no retry: FallbackVoice speaks the sentence with the offline voice instead
        self._client = client or OpenAiModelClient(endpoint, policy=RetryPolicy(retries=0))
        self._where = self._client.where
        self._closed = False

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        text = speakable(self.info, sentence, closed=self._closed)
        body = await self._fetch(text)
        pcm = await asyncio.to_thread(self._decode, body)
        if len(pcm) == 0:
            raise VoiceError(f"{self._where} sent no audio for {text[:40]!r}", retryable=True)
        return SpeechChunk(pcm=pcm, sentence=sentence, voice=self.info.name)

    async def _fetch(self, text: str) -> bytes:
        try:
            return await self._client.speech(
                text, model=self._model, voice=self._voice, response_format=self._format
            )
        except ModelError as exc:
            raise VoiceError(f"openai tts {self._voice!r}: {exc}", retryable=exc.retryable) from exc

    def _decode(self, body: bytes) -> npt.NDArray[np.int16]:
        if self._format == "wav":
            return decode_wav(body)
        return decode_pcm_s16le(body, rate=OPENAI_PCM_RATE)

    async def aclose(self) -> None:
        self._closed = True
        await self._client.aclose()
