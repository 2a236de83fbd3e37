"""The numpy resampler gives SciPy's resample_poly samples, so voices sound as before."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from avatarcast.voice.resample import resample_poly_int16


def _scipy(x: np.ndarray, up: int, down: int) -> np.ndarray:
    g = np.gcd(up, down)
    out = resample_poly(x.astype(np.float64), up // g, down // g)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("rate", [22050, 16000, 24000, 44100, 8000, 96000])
@pytest.mark.parametrize("n", [1, 7, 4801, 22050])
def test_matches_scipy_on_noise_and_clipping_tones(rate: int, n: int) -> None:
    rng = np.random.default_rng(n + rate)
    noise = rng.integers(-20000, 20000, n).astype(np.int16)
    loud = (np.sin(np.arange(n) * 0.3) * 32767).astype(np.int16)
    for x in (noise, loud):
        ours, ref = resample_poly_int16(x, 48000, rate), _scipy(x, 48000, rate)
        assert ours.shape == ref.shape
        assert np.abs(ours.astype(np.int32) - ref.astype(np.int32)).max() <= 1


def test_espeak_speech_resamples_like_scipy() -> None:
    from avatarcast.voice import espeak

    raw = espeak._Library.get().synthesize(
        "Five and a half litres.", voice="en-us", rate=165, pitch=None
    )
    native = np.frombuffer(b"".join(raw.pcm), dtype=np.int16)
    ours = resample_poly_int16(native, 48000, raw.sample_rate)
    assert np.array_equal(ours, _scipy(native, 48000, raw.sample_rate))
