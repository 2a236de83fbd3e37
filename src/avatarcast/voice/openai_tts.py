"""OpenAI text-to-speech (or any server with the same ``/v1/audio/speech`` route).

It gives no phoneme timings, so the animator follows the audio's energy. Errors come back as
:class:`VoiceError` that say whether a retry can help; the key never appears in them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from avatarcast.errors import VoiceError
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.voice.audio import decode_pcm_s16le, decode_wav
from avatarcast.voice.base import VoiceInfo, speakable
from avatarcast.voice.fallback import redact

if TYPE_CHECKING:  # imported on first use: a network voice is opt-in
    from openai import AsyncOpenAI

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

ResponseFormat = Literal["pcm", "wav"]


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
        client: AsyncOpenAI | None = None,
    ) -> None:
        if response_format not in ("pcm", "wav"):
            raise VoiceError(f"openai response_format {response_format!r} is not pcm or wav")
        if timeout <= 0:
            raise VoiceError(f"openai tts timeout {timeout} s is not positive")
        self.info = _info(f"openai:{voice}")
        self._model = model
        self._voice = voice
        self._format: ResponseFormat = response_format
        from openai import AsyncOpenAI

        self._client = client or AsyncOpenAI(
            base_url=base_url or None,
            api_key=api_key or "unused",  # local OpenAI-compatible servers take no key
            timeout=timeout,
            max_retries=0,  # retries and fallback are FallbackVoice's job
        )
        self._where = urlsplit(str(self._client.base_url)).netloc or "openai"
        self._closed = False

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        text = speakable(self.info, sentence, closed=self._closed)
        body = await self._fetch(text)
        pcm = await asyncio.to_thread(self._decode, body)
        if len(pcm) == 0:
            raise VoiceError(f"{self._where} sent no audio for {text[:40]!r}", retryable=True)
        return SpeechChunk(pcm=pcm, sentence=sentence, voice=self.info.name)

    async def _fetch(self, text: str) -> bytes:
        import openai

        what = f"openai tts {self._voice!r} at {self._where}"
        try:
            response = await self._client.audio.speech.create(
                model=self._model, voice=self._voice, input=text, response_format=self._format
            )
            return await response.aread()
        except openai.APITimeoutError as exc:
            raise VoiceError(f"{what}: timed out", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise VoiceError(f"{what}: cannot connect ({exc})", retryable=True) from exc
        except openai.APIStatusError as exc:
            code = exc.status_code
            retry = code in (408, 409, 429) or code >= 500
            msg = redact(exc.message)[:200]
            raise VoiceError(f"{what}: HTTP {code}: {msg}", retryable=retry) from exc
        except openai.OpenAIError as exc:
            raise VoiceError(f"{what}: {redact(str(exc))[:200]}", retryable=True) from exc

    def _decode(self, body: bytes) -> npt.NDArray[np.int16]:
        if self._format == "wav":
            return decode_wav(body)
        return decode_pcm_s16le(body, rate=OPENAI_PCM_RATE)

    async def aclose(self) -> None:
        self._closed = True
        await self._client.close()
