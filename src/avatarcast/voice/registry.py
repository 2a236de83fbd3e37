"""Voice names to engines: one small table, so adding an engine is adding rows."""

from __future__ import annotations

from collections.abc import Callable

from avatarcast.errors import UnknownNameError
from avatarcast.voice.base import Voice, VoiceInfo
from avatarcast.voice.espeak import EspeakVoice, espeak_voice_infos

__all__ = ["create_voice", "default_voice_for", "list_voices"]

#: Engine name -> (its voices, a factory for one of them by name).
_ENGINES: dict[str, tuple[Callable[[], list[VoiceInfo]], Callable[[str], Voice]]] = {
    "espeak": (espeak_voice_infos, EspeakVoice),
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


def create_voice(name: str, *, lang: str = "en") -> Voice:
    """The voice called ``name``; ``"default"`` picks ``default_voice_for(lang)``."""
    if name == "default":
        name = default_voice_for(lang)
    for infos, factory in _ENGINES.values():
        if any(info.name == name for info in infos()):
            return factory(name)
    raise UnknownNameError("voice", name, [v.name for v in list_voices()])
