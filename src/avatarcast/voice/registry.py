"""Voice names to engines: one small table, so adding an engine is adding rows.

Offline espeak voices are plain names (``espeak-nl-f``). Network voices are opt-in and never a
default: ``openai:<voice>`` (``openai:alloy``) and ``edge:<ShortName>``
(``edge:nl-NL-FennaNeural``). Each comes wrapped in a :class:`FallbackVoice` whose fallback is
the espeak voice of its language, so losing the network never silences a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from avatarcast.errors import UnknownNameError
from avatarcast.voice.base import Voice, VoiceInfo
from avatarcast.voice.edge import EdgeVoice, edge_language, edge_voice_infos, is_edge_short_name
from avatarcast.voice.espeak import EspeakVoice, espeak_voice_infos
from avatarcast.voice.fallback import FallbackVoice
from avatarcast.voice.openai_tts import OpenAiTtsVoice, openai_voice_infos

__all__ = ["NetworkVoiceOptions", "create_voice", "default_voice_for", "list_voices"]


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


def _openai(name: str, lang: str, net: NetworkVoiceOptions) -> Voice:
    primary = OpenAiTtsVoice(
        model=net.openai_model,
        voice=name.removeprefix("openai:"),
        base_url=net.openai_base_url or None,
        api_key=net.openai_api_key,
        timeout=net.timeout_s,
    )
    return _with_fallback(primary, lang, net)


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
    ``edge:`` takes any edge ShortName, listed or not.
    """
    if name == "default":
        name = default_voice_for(lang)
    net = network or NetworkVoiceOptions()
    for infos, factory in _ENGINES.values():
        if any(info.name == name for info in infos()):
            return factory(name, lang, net)
    if name.startswith("edge:") and is_edge_short_name(name.removeprefix("edge:")):
        return _edge(name, lang, net)
    raise UnknownNameError("voice", name, [v.name for v in list_voices()])
