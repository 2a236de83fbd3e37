"""Audio features for lip-sync models, computed once per chunk before its audio plays.

``mel80x16`` is the feature Wav2Lip-class models were trained on: 16 kHz audio, pre-emphasis
0.97, an 800-point STFT every 200 samples (80 mel frames a second), 80 Slaney mel bands from
55 to 7600 Hz, dB scaled and mapped to -4..4; video frame ``i`` at ``fps`` sees the 16 mel
frames from ``int(80 * i / fps)``. A model trained on other numbers sees features it does not
know, so these constants are the format, not tuning.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["MEL_FRAMES_PER_S", "MelWindows", "audio_16k", "mel_spectrogram", "wave_window"]

SR = 16_000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
MEL_FRAMES_PER_S = SR // HOP
WINDOW = 16

F32 = npt.NDArray[np.float32]


def audio_16k(pcm48: npt.NDArray[np.int16]) -> F32:
    """48 kHz int16 to 16 kHz float in -1..1 (an exact 3:1 polyphase decimation)."""
    from scipy.signal import resample_poly  # imported here: 1-2 CPU s at every live start

    x = pcm48.astype(np.float32) / 32768.0
    if len(x) == 0:
        return x
    return np.asarray(resample_poly(x, 1, 3), dtype=np.float32)


def _hz_to_mel(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = math.log(6.4) / 27.0
    lin = f / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log, lin)


def _mel_to_hz(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@cache
def _mel_basis() -> F32:
    """Slaney-scale, Slaney-normalised triangular filters (librosa's default)."""
    fft_hz = np.linspace(0.0, SR / 2, N_FFT // 2 + 1)
    lo, hi = _hz_to_mel(np.array([FMIN, FMAX]))
    edges = _mel_to_hz(np.linspace(float(lo), float(hi), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@cache
def _hann() -> F32:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)


def mel_spectrogram(wave16: F32) -> F32:
    """(80, frames) normalised log-mel of 16 kHz audio, frames centred every 200 samples."""
    y = np.append(wave16[:1], wave16[1:] - 0.97 * wave16[:-1]).astype(np.float32)
    pad = N_FFT // 2
    y = np.pad(y, pad, mode="reflect") if len(y) > pad else np.pad(y, pad)
    n_frames = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n_frames]
    spec = np.abs(np.fft.rfft(frames * _hann(), axis=1)).astype(np.float32).T
    mel = _mel_basis() @ spec
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.asarray(np.clip(8.0 * ((db + 100.0) / 100.0) - 4.0, -4.0, 4.0), dtype=np.float32)


class MelWindows:
    """The 1x1x80x16 window each video frame of one chunk sees."""

    def __init__(
        self, pcm48: npt.NDArray[np.int16], fps: int, *, wave16: F32 | None = None
    ) -> None:
        mel = mel_spectrogram(audio_16k(pcm48) if wave16 is None else wave16)
        if mel.shape[1] < WINDOW:
            mel = np.pad(mel, ((0, 0), (0, WINDOW - mel.shape[1])), constant_values=-4.0)
        self._mel = mel
        self._fps = fps

    def __call__(self, frame: int) -> F32:
        start = int(MEL_FRAMES_PER_S * frame / self._fps)
        start = min(start, self._mel.shape[1] - WINDOW)
        return self._mel[None, None, :, start : start + WINDOW].copy()


def wave_window(wave16: F32, frame: int, fps: int, window_ms: int) -> F32:
    """1 x n samples of 16 kHz audio centred on the middle of video frame ``frame``."""
    n = SR * window_ms // 1000
    centre = round(SR * (frame + 0.5) / fps)
    start = centre - n // 2
    out = np.zeros(n, np.float32)
    a, b = max(0, start), min(len(wave16), start + n)
    if b > a:
        out[a - start : b - start] = wave16[a:b]
    return out[None, :]
