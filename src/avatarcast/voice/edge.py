"""Microsoft Edge's online neural voices through the ``edge-tts`` package.

The service streams MP3 and, between the audio, a WordBoundary event per word (offset and
duration in 100 ns ticks from the start of the audio). Words become :class:`TimedWord`; there
are no phoneme timings, so the animator follows the audio's energy.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from avatarcast.errors import VoiceError
from avatarcast.frames import SAMPLE_RATE, Sentence, SpeechChunk, TimedWord
from avatarcast.voice.audio import decode_mp3
from avatarcast.voice.base import VoiceInfo, speakable

__all__ = ["EDGE_VOICES", "EdgeVoice", "edge_voice_infos", "is_edge_short_name"]

_TICKS_PER_MS = 10_000
_SHORT_NAME = re.compile(r"^([a-z]{2,3})-[A-Za-z]{2,4}(-[A-Za-z]+)?-[A-Za-z]+Neural$")

#: A few well-known voices per language; ``create_voice`` also takes any other ShortName.
EDGE_VOICES = (
    "en-US-AriaNeural",
    "en-US-JennyNeural",
    "en-US-GuyNeural",
    "en-GB-SoniaNeural",
    "en-GB-RyanNeural",
    "nl-NL-FennaNeural",
    "nl-NL-ColetteNeural",
    "nl-NL-MaartenNeural",
    "nl-BE-DenaNeural",
    "nl-BE-ArnaudNeural",
    "zh-CN-XiaoxiaoNeural",
    "zh-CN-XiaoyiNeural",
    "zh-CN-YunxiNeural",
    "zh-CN-YunjianNeural",
)


def is_edge_short_name(short_name: str) -> bool:
    return _SHORT_NAME.match(short_name) is not None


def edge_language(short_name: str) -> str:
    """``nl-NL-FennaNeural`` -> ``nl``."""
    m = _SHORT_NAME.match(short_name)
    if m is None:
        raise VoiceError(f"{short_name!r} is not an edge voice ShortName like nl-NL-FennaNeural")
    return m.group(1)


def edge_voice_infos() -> list[VoiceInfo]:
    return [_info(v) for v in EDGE_VOICES]


def _info(short_name: str) -> VoiceInfo:
    return VoiceInfo(
        name=f"edge:{short_name}",
        engine="edge",
        languages=(edge_language(short_name),),
        gives_phonemes=False,
        offline=False,
    )


@dataclass(slots=True)
class _Stream:
    mp3: list[bytes]
    words: list[tuple[str, int, int]]  # (text, offset, duration) in 100 ns ticks


class EdgeVoice:
    """A ``Voice`` speaking through the Edge read-aloud service.

    ``proxy`` (an ``http://`` URL) routes the websocket through a proxy; ``rate``, ``pitch``
    and ``volume`` take edge-tts's forms (``"+10%"``, ``"-5Hz"``).
    """

    def __init__(
        self,
        voice: str = "nl-NL-FennaNeural",
        *,
        rate: str = "+0%",
        pitch: str = "+0Hz",
        volume: str = "+0%",
        proxy: str | None = None,
        connect_timeout: int = 10,
        receive_timeout: int = 30,
    ) -> None:
        self.info = _info(voice)
        self._voice = voice
        self._rate, self._pitch, self._volume = rate, pitch, volume
        self._proxy = proxy
        self._connect_timeout = connect_timeout
        self._receive_timeout = receive_timeout
        self._closed = False

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        text = speakable(self.info, sentence, closed=self._closed)
        got = await self._stream(text)
        pcm = await asyncio.to_thread(decode_mp3, b"".join(got.mp3))
        end_ms = len(pcm) * 1000 // SAMPLE_RATE
        words = [
            TimedWord(word=w, start_ms=min(s, end_ms), end_ms=min(max(e, s), end_ms))
            for w, s, e in (
                (w.strip(), off // _TICKS_PER_MS, (off + dur) // _TICKS_PER_MS)
                for w, off, dur in got.words
            )
            if w
        ]
        return SpeechChunk(pcm=pcm, sentence=sentence, words=words, voice=self.info.name)

    async def _stream(self, text: str) -> _Stream:
        try:
            import aiohttp
            import edge_tts
            from edge_tts.exceptions import EdgeTTSException, NoAudioReceived
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise VoiceError("edge voices need the edge-tts package") from exc
        what = f"edge voice {self._voice!r}"
        got = _Stream(mp3=[], words=[])
        try:
            communicate = edge_tts.Communicate(
                text,
                self._voice,
                rate=self._rate,
                pitch=self._pitch,
                volume=self._volume,
                boundary="WordBoundary",
                proxy=self._proxy,
                connect_timeout=self._connect_timeout,
                receive_timeout=self._receive_timeout,
            )
            async for chunk in communicate.stream():
                if chunk["type"] == "audio":
                    got.mp3.append(chunk.get("data", b""))
                elif chunk["type"] == "WordBoundary":
                    off, dur = int(chunk.get("offset", 0)), int(chunk.get("duration", 0))
                    got.words.append((chunk.get("text", ""), off, dur))
        except NoAudioReceived as exc:
            raise VoiceError(f"{what}: the service sent no audio", retryable=False) from exc
        except (aiohttp.ClientError, EdgeTTSException, OSError) as exc:
            raise VoiceError(f"{what}: {type(exc).__name__}: {exc}", retryable=True) from exc
        except TimeoutError as exc:
            raise VoiceError(f"{what}: timed out", retryable=True) from exc
        except ValueError as exc:  # edge-tts rejects a malformed voice, rate or pitch
            raise VoiceError(f"{what}: {exc}", retryable=False) from exc
        if not got.mp3:
            raise VoiceError(f"{what}: the service sent no audio", retryable=True)
        return got

    async def aclose(self) -> None:
        self._closed = True
