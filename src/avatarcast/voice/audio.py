"""Decoding what network voices send (raw PCM, WAV, MP3) into avatarcast's audio format.

Every function returns mono int16 at 48 kHz. Resampling is ``voice.resample`` (SciPy's
``resample_poly`` in numpy), so the same bytes always decode to the same samples. These are
CPU work: call them from a worker thread.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import numpy.typing as npt

from avatarcast.errors import VoiceError
from avatarcast.frames import SAMPLE_RATE
from avatarcast.voice.resample import resample_poly_int16

__all__ = ["decode_mp3", "decode_pcm_s16le", "decode_wav", "to_48k"]


def to_48k(pcm: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    """Mono int16 at ``rate`` Hz, resampled to 48 kHz."""
    if rate <= 0:
        raise VoiceError(f"audio sample rate {rate} Hz is not positive")
    if len(pcm) == 0:
        return np.zeros(0, np.int16)
    if rate == SAMPLE_RATE:
        return pcm.astype(np.int16, copy=True)
    return resample_poly_int16(pcm, SAMPLE_RATE, rate)


def decode_pcm_s16le(data: bytes, *, rate: int, channels: int = 1) -> npt.NDArray[np.int16]:
    """Raw little-endian 16-bit samples (interleaved if ``channels`` > 1)."""
    frame = 2 * channels
    if len(data) % frame:
        data = data[: len(data) - len(data) % frame]  # a cut-off last sample
    samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    return to_48k(_downmix(samples, channels), rate)


def decode_wav(data: bytes) -> npt.NDArray[np.int16]:
    """A RIFF/WAVE body with 16-bit PCM samples."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise VoiceError(f"the voice sent a WAV body that does not parse: {exc}") from exc
    if width != 2:
        raise VoiceError(f"the voice sent {8 * width}-bit WAV; only 16-bit PCM is supported")
    return decode_pcm_s16le(frames, rate=rate, channels=channels)


def decode_mp3(data: bytes) -> npt.NDArray[np.int16]:
    """An MP3 stream, decoded with PyAV (FFmpeg) and mixed down to mono."""
    import av

    parts: list[npt.NDArray[np.int16]] = []
    rate = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp3") as container:
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or 0)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate or None)
            for frame in container.decode(stream):
                rate = rate or int(frame.sample_rate)
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1).astype(np.int16))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.int16))
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise VoiceError(f"the voice sent MP3 audio that does not decode: {exc}") from exc
    if not parts:
        raise VoiceError("the voice sent MP3 audio without any samples")
    return to_48k(np.concatenate(parts), rate)


def _downmix(samples: npt.NDArray[np.int16], channels: int) -> npt.NDArray[np.int16]:
    if channels == 1:
        return samples
    if channels < 1:
        raise VoiceError(f"audio with {channels} channels")
    mixed: npt.NDArray[np.float64] = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
    return np.rint(mixed).astype(np.int16)
