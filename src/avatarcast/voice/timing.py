"""Phoneme timings for voices that give none: espeak-ng's timings of the same text, stretched.

A network or neural voice returns audio only. espeak-ng speaks the same sentence (a few ms of
CPU) with phoneme and word events; its voiced span (first to last sounding phoneme) is mapped
linearly onto the voiced span of the voice's audio (first to last 10 ms window within 30 dB of
the loudest), so the mouth opens when the audio starts and closes when it ends, with espeak's
phonemes in between. Where the voice's own audio is silent for 40 ms or more (its pauses, which
need not be espeak's), the phonemes there become a pause, so the mouth never talks over
silence. What this leaves: differences in rhythm inside the sentence (a voice that lingers on
one word); ``benchmarks/voice_timing.py`` measures the error against voices whose true timings
are known (benchmarks/README.md, "Voice timings").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from avatarcast.frames import SAMPLE_RATE, Sentence, SpeechChunk, TimedPhoneme, TimedWord
from avatarcast.threads import in_background
from avatarcast.voice.base import Voice, VoiceInfo
from avatarcast.voice.espeak import EspeakVoice

__all__ = ["TimedVoice", "stretch_timings", "voiced_span_ms"]

_WINDOW_MS = 10
_RANGE_DB = 30.0
_SILENT_DB = 40.0  # a window this far below the loudest is silence
_MIN_GAP_MS = 40


def _window_rms(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    n = SAMPLE_RATE * _WINDOW_MS // 1000
    frames = len(pcm) // n
    x = pcm[: frames * n].astype(np.float64).reshape(frames, n)
    rms: npt.NDArray[np.float64] = np.sqrt((x * x).mean(axis=1))
    return rms


def voiced_span_ms(pcm: npt.NDArray[np.int16]) -> tuple[int, int] | None:
    """(start, end) in ms of the audio between its first and last window within 30 dB of its
    loudest 10 ms; None for silence."""
    rms = _window_rms(pcm)
    peak = float(rms.max()) if len(rms) else 0.0
    if peak < 30.0:  # about -60 dBFS: nothing was said
        return None
    loud = np.flatnonzero(rms >= peak * 10 ** (-_RANGE_DB / 20))
    return int(loud[0]) * _WINDOW_MS, (int(loud[-1]) + 1) * _WINDOW_MS


def silent_spans_ms(pcm: npt.NDArray[np.int16]) -> list[tuple[int, int]]:
    """Runs of 40 ms or more whose 10 ms windows are all 40 dB below the loudest."""
    rms = _window_rms(pcm)
    if not len(rms) or float(rms.max()) < 30.0:
        return []
    quiet = rms < float(rms.max()) * 10 ** (-_SILENT_DB / 20)
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * _WINDOW_MS >= _MIN_GAP_MS:
                spans.append((start * _WINDOW_MS, i * _WINDOW_MS))
            start = None
    return spans


def _with_pauses(phonemes: list[TimedPhoneme], pauses: list[tuple[int, int]]) -> list[TimedPhoneme]:
    """``phonemes`` with each pause span cut out of them and spoken as ``_``."""
    out: list[TimedPhoneme] = []
    for p in phonemes:
        pieces = [(p.start_ms, p.end_ms)]
        for a, b in pauses:
            pieces = [
                piece
                for s, e in pieces
                for piece in ((s, min(e, a)), (max(s, b), e))
                if piece[1] > piece[0]
            ]
        out.extend(TimedPhoneme(phoneme=p.phoneme, start_ms=s, end_ms=e) for s, e in pieces)
    out.extend(TimedPhoneme(phoneme="_", start_ms=a, end_ms=b) for a, b in pauses)
    out.sort(key=lambda p: p.start_ms)
    return out


def _sounding(phonemes: Sequence[TimedPhoneme]) -> tuple[int, int] | None:
    spoken = [p for p in phonemes if not p.phoneme.lstrip("'\",%=").startswith("_")]
    if not spoken:
        return None
    return spoken[0].start_ms, spoken[-1].end_ms


def stretch_timings(
    guide: SpeechChunk, pcm: npt.NDArray[np.int16]
) -> tuple[list[TimedPhoneme], list[TimedWord]]:
    """``guide``'s (espeak's) phonemes and words, moved onto the voiced span of ``pcm``."""
    src = _sounding(guide.phonemes)
    dst = voiced_span_ms(pcm)
    if src is None or dst is None or src[1] <= src[0]:
        return [], []
    scale = (dst[1] - dst[0]) / (src[1] - src[0])
    end = len(pcm) * 1000 // SAMPLE_RATE

    def at(t: int) -> int:
        return min(end, max(0, round(dst[0] + (t - src[0]) * scale)))

    phonemes: list[TimedPhoneme] = []
    for p in guide.phonemes:
        a, b = at(p.start_ms), at(p.end_ms)
        if b > a:
            phonemes.append(TimedPhoneme(phoneme=p.phoneme, start_ms=a, end_ms=b))
    phonemes = _with_pauses(phonemes, silent_spans_ms(pcm))
    words = [
        TimedWord(word=w.word, start_ms=at(w.start_ms), end_ms=at(w.end_ms)) for w in guide.words
    ]
    return phonemes, words


class TimedVoice:
    """A voice whose chunks lack phonemes, given espeak's stretched onto its audio.

    Chunks that already carry phonemes pass through. The guide voice should speak the
    sentence's language (``registry`` picks the stream language's default espeak voice).
    """

    def __init__(self, primary: Voice, guide: EspeakVoice) -> None:
        self.primary = primary
        self.guide = guide
        self.info: VoiceInfo = primary.info  # the voice itself still gives none

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        chunk = await self.primary.synthesize(sentence)
        if chunk.phonemes:
            return chunk
        return await in_background(self._timed, chunk)

    def _timed(self, chunk: SpeechChunk) -> SpeechChunk:
        guide = self.guide.synthesize_blocking(chunk.sentence)
        phonemes, words = stretch_timings(guide, chunk.pcm)
        return replace(chunk, phonemes=phonemes, words=words or chunk.words)

    async def aclose(self) -> None:
        await self.primary.aclose()
