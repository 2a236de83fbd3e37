"""Mouth shapes (visemes) and the maps from espeak-ng's phoneme mnemonics to them.

The mnemonics are the ones espeak-ng 1.52 reports in PHONEME events for the en-us, en, nl and
cmn voices (collected from its output, stress marks removed). A mnemonic missing from a map
falls back on its first character, so new or rare phonemes still get a plausible shape.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "OPENNESS",
    "PHONEME_MAPS",
    "VISEMES",
    "is_pause",
    "is_voiced_open",
    "openness",
    "strip_stress",
    "viseme_for",
]

VISEMES: tuple[str, ...] = (
    "rest",  # closed, silence
    "MBP",  # lips pressed
    "FV",  # lower lip to teeth
    "TH",  # tongue between teeth
    "DNL",  # t d n l: tongue to ridge, jaw slightly open
    "KG",  # back of the tongue, jaw half open
    "SZ",  # teeth close, lips spread
    "CHJ",  # lips forward
    "R",
    "AA",  # wide open
    "E",
    "I",
    "O",
    "U",
)

#: How far the jaw opens for each viseme: 0 closed .. 1 wide.
OPENNESS: Mapping[str, float] = {
    "rest": 0.0,
    "MBP": 0.0,
    "FV": 0.12,
    "TH": 0.2,
    "DNL": 0.25,
    "KG": 0.3,
    "SZ": 0.12,
    "CHJ": 0.22,
    "R": 0.3,
    "AA": 1.0,
    "E": 0.65,
    "I": 0.45,
    "O": 0.75,
    "U": 0.4,
}

_VOICED_OPEN = frozenset({"AA", "E", "I", "O", "U"})
_STRESS_MARKS = "'\",%="

#: Shared by every language: consonants and vowels whose mnemonic means the same sound.
_COMMON: dict[str, str] = {
    **dict.fromkeys(["p", "b", "m", "ph"], "MBP"),
    **dict.fromkeys(["f", "v", "v#"], "FV"),
    **dict.fromkeys(["T", "D"], "TH"),
    **dict.fromkeys(["t", "d", "n", "l", "t#", "th", "n^", "n-", "l/", "@L"], "DNL"),
    **dict.fromkeys(["k", "g", "N", "x", "X", "Q", "G", "h", "kh", "q"], "KG"),
    **dict.fromkeys(["s", "z", "ts", "tsh"], "SZ"),
    **dict.fromkeys(["S", "Z", "tS", "dZ", "S;", "tS;", "tS;h", "s.", "ts.", "ts.h", "z."], "CHJ"),
    **dict.fromkeys(["r", "r-", "R", "3", "3:", "@r"], "R"),
    **dict.fromkeys(["j"], "I"),
    **dict.fromkeys(["w"], "U"),
    **dict.fromkeys(["a", "a:", "A", "A:", "aa", "a#", "V", "aI", "aU", "aI@", "aI3"], "AA"),
    **dict.fromkeys(["A@", "ai", "ua", "iA", "Au"], "AA"),
    **dict.fromkeys(["E", "e", "e:", "eI", "e@", "@", "@2", "@5", "ei", "iE", "yE", "o-"], "E"),
    **dict.fromkeys(["EI"], "E"),
    **dict.fromkeys(["I", "i", "i:", "I2", "I#", "i@", "i@3", "i."], "I"),
    **dict.fromkeys(["O", "O:", "O2", "O@", "OI", "0", "o", "o:", "oU", "ou", "ong", "uo"], "O"),
    **dict.fromkeys(["iou", "8", "Y", "Y:", "Wy", "VU"], "O"),
    **dict.fromkeys(["u", "u:", "U", "U@", "u@", "uei", "y", "y&"], "U"),
}

#: Per language, where a mnemonic sounds different from ``_COMMON``'s reading of it.
PHONEME_MAPS: Mapping[str, Mapping[str, str]] = {
    "en": {**_COMMON},
    "nl": {**_COMMON, "!": "rest"},  # nl reports a glottal catch as "!"
    "zh": {**_COMMON},
}

_BY_FIRST: dict[str, str] = {
    **dict.fromkeys("pbm", "MBP"),
    **dict.fromkeys("fv", "FV"),
    **dict.fromkeys("TD", "TH"),
    **dict.fromkeys("tdnlL", "DNL"),
    **dict.fromkeys("kgNxXQGhqc", "KG"),
    **dict.fromkeys("sz", "SZ"),
    **dict.fromkeys("SZCJ", "CHJ"),
    **dict.fromkeys("rR3", "R"),
    **dict.fromkeys("aAV", "AA"),
    **dict.fromkeys("eE@", "E"),
    **dict.fromkeys("iIj", "I"),
    **dict.fromkeys("oO08YW", "O"),
    **dict.fromkeys("uUwy", "U"),
    "_": "rest",
}


def strip_stress(phoneme: str) -> str:
    return phoneme.lstrip(_STRESS_MARKS)


def is_pause(phoneme: str) -> bool:
    """espeak's pauses and boundaries all start with ``_`` (``_``, ``_:``, ``_!``, ``_|``)."""
    return strip_stress(phoneme).startswith("_")


def viseme_for(phoneme: str, lang: str) -> str:
    """The viseme of one espeak mnemonic (stress marks allowed) in ``lang``."""
    name = strip_stress(phoneme)
    if not name or name.startswith("_"):
        return "rest"
    table = PHONEME_MAPS.get(lang.split("-")[0].lower(), _COMMON)
    found = table.get(name)
    if found is not None:
        return found
    return _BY_FIRST.get(name[0], "E")


def openness(viseme: str) -> float:
    return OPENNESS.get(viseme, 0.0)


def is_voiced_open(viseme: str) -> bool:
    """True for the vowel shapes: voiced with the jaw open, so the mouth must visibly open."""
    return viseme in _VOICED_OPEN
