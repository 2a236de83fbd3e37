"""Which viseme the host's mouth shows in each recorded frame: the script aligned to the audio.

espeak-ng speaks the script with phoneme timings; both its audio and the recording become
MFCCs (20 ms hop, per-utterance mean and variance normalised, so voice and room matter less);
dynamic time warping with slopes between 1/2 and 2 (steps (1,1), (1,2), (2,1): each row of
the cost matrix depends only on earlier rows, so a row is one vectorised numpy step) maps
espeak's time onto the recording's, and with it every phoneme. Leading and trailing silence is
trimmed from both first (the recording starts with the silent idle part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.fft import dct
from scipy.signal import resample_poly

from avatarcast.avatar.visemes import viseme_for
from avatarcast.errors import ConfigError
from avatarcast.frames import SAMPLE_RATE, Sentence, TimedPhoneme
from avatarcast.voice.espeak import EspeakVoice

__all__ = ["Alignment", "align_script", "mfcc", "speech_span", "synthesize_script"]

F32 = npt.NDArray[np.float32]
RATE = 16_000
HOP = 320  # 20 ms
WIN = 400  # 25 ms
N_MELS = 26
N_CEPS = 13


@dataclass(frozen=True, slots=True)
class Alignment:
    """Per recorded video frame: the viseme shown (``rest`` outside speech) and how much of
    the frame its phoneme covers (0..1; patches are cut from frames well inside a phoneme)."""

    visemes: list[str]
    cover: list[float]


def synthesize_script(text: str, lang: str) -> tuple[F32, list[TimedPhoneme]]:
    """espeak-ng's reading of ``text``: audio (mono float32, 16 kHz) and phoneme timings."""
    voice = EspeakVoice("espeak-nl-m" if lang == "nl" else "espeak-en-m")
    chunk = voice.synthesize_blocking(Sentence(text=text, lang=lang, source="template"))
    audio = resample_poly(chunk.pcm.astype(np.float32) / 32768.0, RATE, SAMPLE_RATE)
    return audio.astype(np.float32), list(chunk.phonemes)


def _frames(audio: F32) -> F32:
    n = max(0, 1 + (len(audio) - WIN) // HOP)
    if n == 0:
        return np.zeros((0, WIN), np.float32)
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    out: F32 = (audio[idx] * np.hanning(WIN)).astype(np.float32)
    return out


def _mel_bank() -> F32:
    nfft = 512
    mel = np.linspace(0, 2595 * np.log10(1 + (RATE / 2) / 700), N_MELS + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    bins = np.floor((nfft + 1) * hz / RATE).astype(int)
    bank = np.zeros((N_MELS, nfft // 2 + 1), np.float32)
    for m in range(1, N_MELS + 1):
        a, b, c = bins[m - 1], bins[m], bins[m + 1]
        bank[m - 1, a:b] = (np.arange(a, b) - a) / max(1, b - a)
        bank[m - 1, b:c] = (c - np.arange(b, c)) / max(1, c - b)
    return bank


def mfcc(audio: F32) -> F32:
    """(frames, 13) MFCCs without c0, normalised per utterance."""
    fr = _frames(audio)
    if len(fr) == 0:
        return np.zeros((0, N_CEPS - 1), np.float32)
    power = np.abs(np.fft.rfft(fr, 512)) ** 2
    logmel = np.log(power @ _mel_bank().T + 1e-8)
    c = dct(logmel, type=2, axis=1, norm="ortho")[:, 1:N_CEPS]
    c = (c - c.mean(axis=0)) / (c.std(axis=0) + 1e-6)
    out: F32 = np.asarray(c, np.float32)
    return out


def frame_energy(audio: F32) -> F32:
    """RMS per 20 ms hop."""
    fr = _frames(audio)
    out: F32 = np.sqrt((fr**2).mean(axis=1)).astype(np.float32)
    return out


def speech_span(audio: F32) -> tuple[int, int]:
    """First and last hop with speech (energy above 10 % of the loud speech's level)."""
    e = frame_energy(audio)
    if len(e) == 0 or float(e.max()) <= 1e-4:
        return 0, 0
    gate = 0.1 * float(np.percentile(e, 95))
    on = np.nonzero(e > gate)[0]
    return int(on[0]), int(on[-1]) + 1


def dtw_path(a: F32, b: F32) -> npt.NDArray[np.intp]:
    """For each row of ``a``, the matched row of ``b`` (monotonic, slopes 1/2..2)."""
    n, m = len(a), len(b)
    an = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-6)
    bn = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-6)
    inf = np.float32(np.inf)
    d = np.full((n, m), inf, np.float32)
    step = np.zeros((n, m), np.int8)  # 0: (1,1), 1: (1,2), 2: (2,1)
    d[0, 0] = 1.0 - float(an[0] @ bn[0])
    for i in range(1, n):
        cost = 1.0 - bn @ an[i]
        c0 = np.full(m, inf, np.float32)
        c0[1:] = d[i - 1, :-1]
        c1 = np.full(m, inf, np.float32)
        c1[2:] = d[i - 1, :-2]
        c2 = np.full(m, inf, np.float32)
        if i >= 2:
            c2[1:] = d[i - 2, :-1]
        best = np.minimum(np.minimum(c0, c1), c2)
        step[i] = np.where(best == c0, 0, np.where(best == c1, 1, 2))
        d[i] = best + cost
    if not np.isfinite(d[n - 1, m - 1]):
        raise ConfigError(
            "the recording's speech does not follow the script (its length is outside half "
            "to twice espeak's reading): read the script that `avatarcast avatars script` prints",
            field="video",
        )
    match = np.zeros(n, np.intp)
    i, j = n - 1, m - 1
    while i > 0:
        match[i] = j
        s = step[i, j]
        if s == 0:
            i, j = i - 1, j - 1
        elif s == 1:
            i, j = i - 1, j - 2
        else:
            match[i - 1] = j
            i, j = i - 2, j - 1
    match[0] = 0
    return match


def align_script(recording: F32, script: str, lang: str, n_frames: int, fps: int) -> Alignment:
    """The viseme of each of ``n_frames`` video frames of ``recording`` reading ``script``."""
    tts, phonemes = synthesize_script(script, lang)
    r0, r1 = speech_span(recording)
    t0, t1 = speech_span(tts)
    if r1 - r0 < 25:
        raise ConfigError("the recording has less than half a second of speech", field="video")
    match = dtw_path(mfcc(tts)[t0:t1], mfcc(recording)[r0:r1])
    hop_ms = 1000.0 * HOP / RATE

    def to_rec_ms(ms: float) -> float:
        k = int(np.clip(round(ms / hop_ms) - t0, 0, len(match) - 1))
        return (r0 + float(match[k])) * hop_ms

    spans = [(to_rec_ms(p.start_ms), to_rec_ms(p.end_ms), p.phoneme) for p in phonemes]
    return _per_frame(spans, lang, n_frames, fps)


def _per_frame(
    spans: Sequence[tuple[float, float, str]], lang: str, n_frames: int, fps: int
) -> Alignment:
    frame_ms = 1000.0 / fps
    visemes = ["rest"] * n_frames
    cover = [0.0] * n_frames
    for start, end, ph in spans:
        v = viseme_for(ph, lang)
        if end <= start:
            continue
        for f in range(max(0, int(start // frame_ms)), min(n_frames, int(end // frame_ms) + 1)):
            a, b = f * frame_ms, (f + 1) * frame_ms
            c = max(0.0, min(b, end) - max(a, start)) / frame_ms
            if c > cover[f]:
                cover[f], visemes[f] = c, v
    return Alignment(visemes=visemes, cover=cover)
