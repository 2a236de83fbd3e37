"""Audio checks on decoded PCM: levels, clipping, and noise that is not speech.

Speech, even whispered consonants, sits in a spectrum with structure and voiced parts with a
pitch (a periodic waveform between 70 and 400 Hz); a hiss, a burst of static or a "meow" of
corrupted audio is flat across the band and has no pitch. A loud block counts as noise when
its spectral flatness is high and its autocorrelation has no pitch peak; measured on espeak
speech, fewer than 1 in 5 loud blocks look like that (the fricatives), and every block of
white noise does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["block_dbfs", "clipped_share", "noise_share"]

BLOCK = 1024
_EPS = 1e-12


def block_dbfs(pcm: npt.NDArray[np.float32], block: int) -> npt.NDArray[np.float64]:
    """The RMS level of each whole ``block`` of ``pcm`` in dB below full scale."""
    n = len(pcm) // block
    if n == 0:
        return np.zeros(0)
    blocks = pcm[: n * block].astype(np.float64).reshape(n, block)
    return np.asarray(20 * np.log10(np.sqrt((blocks**2).mean(axis=1)) + _EPS), dtype=np.float64)


def clipped_share(pcm: npt.NDArray[np.float32], *, level: float = 0.99) -> float:
    """Share of samples at (or past) full scale."""
    return float((np.abs(pcm) >= level).mean()) if len(pcm) else 0.0


def noise_share(
    pcm: npt.NDArray[np.float32],
    sample_rate: int,
    *,
    loud_dbfs: float = -35.0,
    flatness: float = 0.35,
    pitch: float = 0.35,
    levels: npt.NDArray[np.float64] | None = None,
) -> tuple[int, int]:
    """``(loud blocks, noise blocks)`` among every other block: those above ``loud_dbfs``, and
    those among them with a flat spectrum (above ``flatness``) and no pitch (autocorrelation
    peak below ``pitch``). ``levels``: ``block_dbfs(pcm, BLOCK)`` when the caller has it."""
    levels = block_dbfs(pcm, BLOCK) if levels is None else levels
    # every other block: a burst of noise lasts many blocks, and this halves the FFTs
    loud_idx = np.flatnonzero(levels > loud_dbfs)[::2]
    if len(loud_idx) == 0:
        return 0, 0
    blocks = pcm[: len(levels) * BLOCK].astype(np.float64).reshape(-1, BLOCK)[loud_idx]
    blocks = blocks - blocks.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(blocks * np.hanning(BLOCK), axis=1)) ** 2
    freqs = np.fft.rfftfreq(BLOCK, 1.0 / sample_rate)
    band = spec[:, (freqs >= 100) & (freqs <= 8000)] + _EPS
    flat = np.exp(np.log(band).mean(axis=1)) / band.mean(axis=1)
    # autocorrelation by the Wiener-Khinchin theorem, normalised by the zero lag
    full = np.abs(np.fft.rfft(blocks, n=2 * BLOCK, axis=1)) ** 2
    ac = np.fft.irfft(full, axis=1)[:, :BLOCK]
    ac = ac / (ac[:, :1] + _EPS)
    lo, hi = sample_rate // 400, min(sample_rate // 70, BLOCK - 1)
    strength = ac[:, lo:hi].max(axis=1)
    noisy = (flat > flatness) & (strength < pitch)
    return len(loud_idx), int(noisy.sum())
