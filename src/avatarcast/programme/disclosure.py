"""What the programme says and shows about itself: spoken AI disclosures and the safe-mode slate.

The visible label is drawn by the compositor on every frame; these are the spoken side and the
slate shown when no human supervisor is watching ("back soon", or "waiting for a supervisor"
before anyone has watched).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from avatarcast.frames import SAMPLE_RATE, Sentence

_DISCLOSURE = {
    "en": "A quick note: I am an AI-generated presenter, and a human team supervises this stream.",
    "nl": "Even ter info: ik ben een door AI gegenereerde presentator, "
    "en een menselijk team houdt toezicht op deze stream.",
    "zh": "温馨提示：我是AI生成的虚拟主播，本直播由真人团队监管。",
}
_SLATE = {
    "en": "We'll be right back",
    "nl": "We zijn zo terug",
    "zh": "马上回来",
}
#: a stream nobody has watched yet (``SafeMode(reason="no_supervisor")``)
_WAITING = {
    "en": "Waiting for a supervisor",
    "nl": "Wachten op een supervisor",
    "zh": "等待主管上线",
}


def disclosure_sentence(lang: str, text: str | None = None) -> Sentence:
    """The spoken disclosure in the stream's language (English when it has none)."""
    return Sentence(
        text=text or _DISCLOSURE.get(lang, _DISCLOSURE["en"]),
        lang=lang if lang in _DISCLOSURE else "en",
        source="disclosure",
        pause_after_ms=400,
    )


def slate_text(lang: str, reason: str | None = None) -> str:
    """The slate's words in ``lang`` (English when it has none): "back soon", or "waiting for
    a supervisor" for reason ``no_supervisor``."""
    words = _WAITING if reason == "no_supervisor" else _SLATE
    return words.get(lang, words["en"])


@functools.lru_cache(maxsize=2)
def audio_bed(seconds: float = 8.0, *, level_dbfs: float = -38.0) -> npt.NDArray[np.int16]:
    """A quiet, slowly breathing chord to play under the slate: never dead air, never loud.

    It loops seamlessly: every partial completes whole cycles in ``seconds``. Made once per
    process, read-only (0.04 CPU s a stream start spent; the zygote makes it before it forks).
    """
    bed = _chord(seconds, level_dbfs)
    bed.flags.writeable = False
    return bed


def _chord(seconds: float, level_dbfs: float) -> npt.NDArray[np.int16]:
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.5, 330.0)) / 3
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * t / seconds) ** 2
    peak = 32767 * 10 ** (level_dbfs / 20)
    return np.asarray(np.round(chord * swell * peak), dtype=np.int16)
