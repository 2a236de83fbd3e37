"""Polyphase resampling with numpy alone: the filter and alignment of SciPy's ``resample_poly``.

Every stream resamples its voice (espeak-ng speaks at 22.05 kHz) to 48 kHz, and importing
``scipy.signal`` for it cost 0.83 CPU s per stream start, more than a third of a start's CPU.
This is the same computation: a Kaiser-windowed (beta 5) linear-phase low-pass FIR of
``20 * max(up, down) + 1`` taps with the same zero padding and trimming, so the output has
the same length and lines up with the input the same way; samples agree with SciPy's to
within one least significant bit after rounding to int16 (the sums run in another order).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["resample_poly_int16"]

F64 = npt.NDArray[np.float64]


@lru_cache(maxsize=8)
def _phases(up: int, down: int) -> tuple[F64, int, int]:
    """The padded filter split by phase (``up`` rows), and the pre-pad and trim offsets."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = 2 * half_len + 1
    m = np.arange(taps, dtype=np.float64) - half_len
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(taps, 5.0)
    h = h / h.sum() * up
    pre_pad = down - half_len % down
    pre_remove = (half_len + pre_pad) // down
    padded = np.concatenate((np.zeros(pre_pad), h))
    width = math.ceil(len(padded) / up)
    table = np.zeros((up, width))
    for phase in range(up):
        row = padded[phase::up]
        table[phase, : len(row)] = row
    return table, pre_remove, width


def resample_poly_int16(pcm: npt.NDArray[np.int16], up: int, down: int) -> npt.NDArray[np.int16]:
    """``pcm`` resampled by ``up / down`` (reduced here), rounded and clipped to int16."""
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down:
        return pcm.astype(np.int16, copy=True)
    n_in = len(pcm)
    n_out = -(-n_in * up // down)
    table, pre_remove, width = _phases(up, down)
    j = (np.arange(n_out) + pre_remove) * down  # output positions on the upsampled grid
    phase, base = j % up, j // up
    x = np.concatenate((np.zeros(width), pcm.astype(np.float64), np.zeros(width)))
    out = np.zeros(n_out)
    for t in range(width):  # y[m] = sum_t h[phase + t*up] * x[base - t]
        out += table[phase, t] * x[base - t + width]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
