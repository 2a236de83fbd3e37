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
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["resample_poly_int16"]

F64 = npt.NDArray[np.float64]


@lru_cache(maxsize=8)
def _phases(up: int, down: int) -> tuple[F64, int, int]:
    """The padded filter split by phase (``up`` rows, taps reversed), and the pre-pad and
    trim offsets."""
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
    return np.ascontiguousarray(table[:, ::-1]), pre_remove, width


def resample_poly_int16(pcm: npt.NDArray[np.int16], up: int, down: int) -> npt.NDArray[np.int16]:
    """``pcm`` resampled by ``up / down`` (reduced here), rounded and clipped to int16.

    Output ``k`` is ``y[k] = sum_t h[phase + t * up] * x[base - t]`` with ``j = (k + pre) *
    down``, ``phase = j % up``, ``base = j // up``. Outputs ``up`` apart share their phase and
    their inputs lie ``down`` apart, so each of the ``up`` phases is one matrix-vector product
    over a strided view of the input: 6x faster than a pass per tap for 22.05 -> 48 kHz.
    """
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down:
        return pcm.astype(np.int16, copy=True)
    n_out = -(-len(pcm) * up // down)
    reversed_taps, pre_remove, width = _phases(up, down)
    x = np.concatenate((np.zeros(width), pcm.astype(np.float64), np.zeros(width)))
    windows = sliding_window_view(x, width)  # windows[s] = x[s : s + width]
    out = np.empty(n_out)
    for k in range(min(up, n_out)):
        j = (k + pre_remove) * down
        phase, first = j % up, j // up + 1  # x[base - t], t < width: windows[base + 1] reversed
        rows = windows[first : first + down * ((n_out - 1 - k) // up) + 1 : down]
        out[k::up] = rows @ reversed_taps[phase]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
