"""IPA phonemes (Piper's, from its espeak-ng phonemiser) as the espeak mnemonics visemes use.

``avatar.visemes`` maps espeak-ng's own phoneme mnemonics to mouth shapes; a voice that reports
IPA (Piper) hands its phonemes through :func:`timed_from_ipa`, which renames each sound to the
mnemonic of the same sound, moves stress marks onto the next phoneme (as espeak writes them),
folds length marks into the phoneme before, and turns word gaps and punctuation into pauses.
"""

from __future__ import annotations

from collections.abc import Sequence

from avatarcast.frames import TimedPhoneme

__all__ = ["IPA_TO_ESPEAK", "timed_from_ipa"]

IPA_TO_ESPEAK: dict[str, str] = {
    "ə": "@",
    "ɚ": "3",
    "ɜ": "3",
    "ɐ": "a#",
    "æ": "a",
    "a": "a",
    "ɑ": "A",
    "ɒ": "0",
    "ɔ": "O",
    "o": "o",
    "ʊ": "U",
    "u": "u",
    "ʌ": "V",
    "ɛ": "E",
    "e": "e",
    "ɪ": "I",
    "ᵻ": "I#",
    "i": "i",
    "y": "y",
    "ø": "Y",
    "œ": "W",
    "θ": "T",
    "ð": "D",
    "ʃ": "S",
    "ʒ": "Z",
    "ŋ": "N",
    "ɹ": "r",
    "ɾ": "t#",
    "ɡ": "g",
    "ç": "C",
    "χ": "x",
    "ɣ": "Q",
    "ʔ": "_!",
    "ɲ": "n^",
    "ʋ": "v#",
}
_STRESS = {"ˈ": "'", "ˌ": ","}
_LENGTH = "ː"
_PAUSES = frozenset(" ,.;:!?-—…()\"'^$_")


def _mnemonic(symbol: str) -> str:
    if symbol in _PAUSES or not symbol.strip():
        return "_"
    return IPA_TO_ESPEAK.get(symbol, symbol)


def timed_from_ipa(spans: Sequence[tuple[str, int, int]]) -> list[TimedPhoneme]:
    """``(ipa_symbol, start_ms, end_ms)`` spans to timed espeak mnemonics, empty spans merged."""
    out: list[TimedPhoneme] = []
    stress = ""
    for symbol, start, end in spans:
        if symbol in _STRESS:
            stress = _STRESS[symbol]
            continue
        if symbol == _LENGTH and out:
            last = out[-1]
            name = last.phoneme if last.phoneme.endswith(":") else last.phoneme + ":"
            out[-1] = TimedPhoneme(
                phoneme=name, start_ms=last.start_ms, end_ms=max(end, last.end_ms)
            )
            continue
        name = _mnemonic(symbol)
        if name == "_":
            stress = ""
            if out and out[-1].phoneme == "_" and out[-1].end_ms >= start:
                out[-1] = TimedPhoneme(phoneme="_", start_ms=out[-1].start_ms, end_ms=end)
                continue
        else:
            name, stress = stress + name, ""
        if end > start:
            out.append(TimedPhoneme(phoneme=name, start_ms=start, end_ms=end))
    return out
