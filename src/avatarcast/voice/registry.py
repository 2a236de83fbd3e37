"""Voice names to engines: one small table, so adding an engine is adding rows.

Offline espeak voices are plain names (``espeak-nl-f``). ``piper:/path/voice.onnx`` is an
offline neural voice from the user's Piper model. Network voices are opt-in and never a
default: ``openai:<voice>`` (``openai:alloy``, or any voice name an OpenAI-compatible server
knows, such as a self-hosted cloning server's ``openai:anna-clone``) and ``edge:<ShortName>``
(``edge:nl-NL-FennaNeural``). Each comes wrapped in a :class:`FallbackVoice` whose fallback is
the espeak voice of its language, so losing the network never silences a stream. OpenAI-style
voices give no phoneme timings: :class:`TimedVoice` adds espeak's, stretched onto the audio.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avatarcast.errors import UnknownNameError
from avatarcast.voice.base import Voice, VoiceInfo
from avatarcast.voice.edge import EdgeVoice, edge_language, edge_voice_infos, is_edge_short_name
from avatarcast.voice.espeak import EspeakVoice, espeak_voice_infos
from avatarcast.voice.fallback import FallbackVoice
from avatarcast.voice.openai_tts import OpenAiTtsVoice, openai_voice_infos
from avatarcast.voice.timing import TimedVoice

__all__ = [
    "NetworkVoiceOptions",
    "create_voice",
    "default_voice_for",
    "describe_voice",
    "list_voices",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkVoiceOptions:
    """How network voices connect. The CLI or app factory fills it from Settings.

    An empty ``openai_base_url`` means OpenAI's own endpoint. ``timeout_s`` bounds one
    sentence's attempt before the offline fallback speaks it; after ``failures_to_open``
    failures in a row the network voice rests for ``cooldown_s``.
    """

    openai_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    openai_model: str = "gpt-4o-mini-tts"
    edge_proxy: str | None = field(default=None, repr=False)
    timeout_s: float = 15.0
    failures_to_open: int = 3
    cooldown_s: float = 60.0


_Factory = Callable[[str, str, NetworkVoiceOptions], Voice]


def _espeak(name: str, lang: str, net: NetworkVoiceOptions) -> Voice:
    return EspeakVoice(name)


#: a voice name an OpenAI-compatible server may know (OpenAI's own, or a cloning server's)
_CUSTOM_OPENAI = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def _openai(name: str, lang: str, net: NetworkVoiceOptions) -> Voice:
    primary = OpenAiTtsVoice(
        model=net.openai_model,
        voice=name.removeprefix("openai:"),
        base_url=net.openai_base_url or None,
        api_key=net.openai_api_key,
        timeout=net.timeout_s,
    )
    timed = TimedVoice(primary, EspeakVoice(default_voice_for(lang)))
    return _with_fallback(timed, lang, net)


def _piper(name: str, lang: str, net: NetworkVoiceOptions) -> Voice:
    from avatarcast.voice.piper import PREFIX, PiperVoice, piper_language

    path = name.removeprefix(PREFIX)
    try:
        guide = EspeakVoice(default_voice_for(piper_language(Path(path))))
    except UnknownNameError:
        guide = EspeakVoice(default_voice_for(lang))
    return PiperVoice(path, guide=guide)


def _edge(name: str, lang: str, net: NetworkVoiceOptions) -> Voice:
    short = name.removeprefix("edge:")
    timeout = max(1, round(net.timeout_s))
    primary = EdgeVoice(
        short, proxy=net.edge_proxy, connect_timeout=timeout, receive_timeout=timeout
    )
    return _with_fallback(primary, edge_language(short), net)


def _with_fallback(primary: Voice, lang: str, net: NetworkVoiceOptions) -> FallbackVoice:
    return FallbackVoice(
        primary,
        EspeakVoice(default_voice_for(lang)),
        timeout=net.timeout_s,
        failures_to_open=net.failures_to_open,
        cooldown=net.cooldown_s,
    )


#: Engine name -> (its listed voices, a factory for one of them by name).
_ENGINES: dict[str, tuple[Callable[[], list[VoiceInfo]], _Factory]] = {
    "espeak": (espeak_voice_infos, _espeak),
    "openai": (openai_voice_infos, _openai),
    "edge": (edge_voice_infos, _edge),
}

#: The voice a stream in a language gets when it names none (or names "default").
_DEFAULTS: dict[str, str] = {
    "en": "espeak-en-f",
    "nl": "espeak-nl-f",
    "zh": "espeak-zh-f",
}


def list_voices() -> list[VoiceInfo]:
    return [info for infos, _ in _ENGINES.values() for info in infos()]


def default_voice_for(lang: str) -> str:
    base = lang.lower().replace("_", "-").split("-")[0]
    if base not in _DEFAULTS:
        raise UnknownNameError("voice language", lang, list(_DEFAULTS))
    return _DEFAULTS[base]


def create_voice(
    name: str, *, lang: str = "en", network: NetworkVoiceOptions | None = None
) -> Voice:
    """The voice called ``name``; ``"default"`` picks ``default_voice_for(lang)``.

    ``lang`` also picks the offline fallback of a multilingual network voice (``openai:*``).
    ``edge:`` takes any edge ShortName, listed or not; ``openai:`` any plain voice name (a
    custom voice of the server at ``openai_base_url``); ``piper:`` a path to a ``.onnx``
    voice with its ``.onnx.json`` beside it.
    """
    if name == "default":
        name = default_voice_for(lang)
    net = network or NetworkVoiceOptions()
    for infos, factory in _ENGINES.values():
        if any(info.name == name for info in infos()):
            return factory(name, lang, net)
    if name.startswith("edge:") and is_edge_short_name(name.removeprefix("edge:")):
        return _edge(name, lang, net)
    if name.startswith("openai:") and _CUSTOM_OPENAI.fullmatch(name.removeprefix("openai:")):
        return _openai(name, lang, net)
    if name.startswith("piper:") and name.endswith(".onnx"):
        return _piper(name, lang, net)
    raise UnknownNameError("voice", name, [v.name for v in list_voices()])


def describe_voice(name: str) -> VoiceInfo:
    """What ``create_voice(name)`` would make, without making it: listed voices, any edge
    ShortName, any ``openai:`` name and ``piper:`` paths (their language read from the
    model's config). An unknown name raises ``UnknownNameError``."""
    for info in list_voices():
        if info.name == name:
            return info
    rest = name.partition(":")[2]
    if name.startswith("edge:") and is_edge_short_name(rest):
        return VoiceInfo(
            name=name,
            engine="edge",
            languages=(edge_language(rest),),
            gives_phonemes=False,
            offline=False,
        )
    if name.startswith("openai:") and _CUSTOM_OPENAI.fullmatch(rest):
        return VoiceInfo(
            name=name,
            engine="openai",
            languages=openai_voice_infos()[0].languages,
            gives_phonemes=False,
            offline=False,
        )
    if name.startswith("piper:") and name.endswith(".onnx"):
        from avatarcast.voice.piper import piper_language

        return VoiceInfo(
            name=name,
            engine="piper",
            languages=(piper_language(Path(rest)),),
            gives_phonemes=True,
            offline=True,
        )
    raise UnknownNameError("voice", name, [v.name for v in list_voices()])
