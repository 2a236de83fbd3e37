"""Measured health of an encoded programme: what operators judge by eye and ear, as numbers.

Everything here is read back from the media file by decoding it, never taken from the
pipeline's own bookkeeping, so a bug upstream shows up as a bad number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelProbe:
    """Where the AI label plate is and its luma, to check it is on a decoded frame."""

    box: Box
    luma: float
    tolerance: float = 24.0


@dataclass(slots=True, kw_only=True)
class MediaHealth:
    video_codec: str = ""
    audio_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frame_count: int = 0
    video_duration_s: float = 0.0
    audio_duration_s: float = 0.0
    audio_sample_rate: int = 0
    av_duration_diff_ms: float = 0.0
    lipsync_lag_ms: float | None = None
    longest_frozen_run_frames: int = 0
    frozen_runs_over_1s: int = 0
    longest_silence_s: float = 0.0
    label_frames: int = 0
    label_missing_frames: list[int] = field(default_factory=list)
    mouth_open_per_frame: list[float] = field(default_factory=list)

    def as_dict(self, *, with_series: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_series:
            d.pop("mouth_open_per_frame")
        d["label_missing_frames"] = self.label_missing_frames[:50]
        return d


def luma_plane(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The decoded Y plane as coded (limited range), the same numbers the compositor wrote."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    return np.asarray(frame.to_ndarray(), dtype=np.uint8)[: frame.height]


def mouth_openness(y_plane: npt.NDArray[np.uint8], box: Box, dark: int = 70) -> float:
    """Share of dark pixels (the open mouth's interior) inside ``box`` of a luma plane."""
    x, y, w, h = box
    region = y_plane[y : y + h, x : x + w]
    return float((region < dark).mean()) if region.size else 0.0


def analyse(
    path: Path,
    *,
    label: LabelProbe | None = None,
    mouth_box: Box | None = None,
    silence_dbfs: float = -50.0,
) -> MediaHealth:
    """Decode ``path`` completely and measure it."""
    out = MediaHealth()
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        as_ = container.streams.audio[0] if container.streams.audio else None
        out.video_codec = vs.codec_context.name
        out.width, out.height = vs.codec_context.width, vs.codec_context.height
        out.fps = float(vs.average_rate or 0)
        if as_ is not None:
            out.audio_codec = as_.codec_context.name
            out.audio_sample_rate = as_.codec_context.sample_rate
        prev: npt.NDArray[np.uint8] | None = None
        run = longest = 0
        runs_over = 0
        audio_parts: list[npt.NDArray[np.float32]] = []
        fps = out.fps or 25.0
        streams = [vs] if as_ is None else [vs, as_]
        for frame in container.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                y = luma_plane(frame)
                n = out.frame_count
                out.frame_count += 1
                small = y[::4, ::4]
                if prev is not None and np.array_equal(small, prev):
                    run += 1
                    longest = max(longest, run)
                    if run == int(fps):
                        runs_over += 1
                else:
                    run = 0
                prev = small
                if label is not None:
                    lx, ly, lw, lh = label.box
                    plate = y[ly : ly + lh, lx : lx + lw]
                    # the plate's dominant luma must be there; text pixels are the minority
                    if plate.size and abs(float(np.median(plate)) - label.luma) <= label.tolerance:
                        out.label_frames += 1
                    else:
                        out.label_missing_frames.append(n)
                if mouth_box is not None:
                    out.mouth_open_per_frame.append(mouth_openness(y, mouth_box))
            elif isinstance(frame, av.AudioFrame):
                a = frame.to_ndarray()
                audio_parts.append(np.asarray(a, dtype=np.float32).mean(axis=0))
    out.longest_frozen_run_frames = longest + 1 if longest else 0
    out.frozen_runs_over_1s = runs_over
    out.video_duration_s = out.frame_count / fps
    if audio_parts and out.audio_sample_rate:
        pcm = np.concatenate(audio_parts)
        out.audio_duration_s = len(pcm) / out.audio_sample_rate
        out.longest_silence_s = _longest_silence(pcm, out.audio_sample_rate, silence_dbfs)
        if out.mouth_open_per_frame:
            out.lipsync_lag_ms = _lipsync_lag_ms(
                np.asarray(out.mouth_open_per_frame), pcm, out.audio_sample_rate, fps
            )
    out.av_duration_diff_ms = abs(out.video_duration_s - out.audio_duration_s) * 1000.0
    return out


def frame_rms(
    pcm: npt.NDArray[np.float32], sample_rate: int, fps: float
) -> npt.NDArray[np.float64]:
    """RMS of the audio during each video frame."""
    spf = round(sample_rate / fps)
    n = len(pcm) // spf
    if n == 0:
        return np.zeros(0)
    blocks = pcm[: n * spf].astype(np.float64).reshape(n, spf)
    return np.asarray(np.sqrt((blocks**2).mean(axis=1)), dtype=np.float64)


def _longest_silence(pcm: npt.NDArray[np.float32], sample_rate: int, dbfs: float) -> float:
    win = sample_rate // 50  # 20 ms
    n = len(pcm) // win
    if n == 0:
        return 0.0
    blocks = pcm[: n * win].astype(np.float64).reshape(n, win)
    peak = 1.0 if np.abs(pcm).max() <= 1.0 else 32768.0
    level = 20 * np.log10(np.sqrt((blocks**2).mean(axis=1)) / peak + 1e-12)
    quiet = level < dbfs
    best = cur = 0
    for q in quiet:
        cur = cur + 1 if q else 0
        best = max(best, cur)
    return best * win / sample_rate


def _lipsync_lag_ms(
    mouth: npt.NDArray[np.float64], pcm: npt.NDArray[np.float32], sample_rate: int, fps: float
) -> float | None:
    """Lag between mouth movement and audio energy, by cross-correlation over +-8 frames.

    Positive means the picture lags the sound.
    """
    rms = frame_rms(pcm, sample_rate, fps)
    n = min(len(rms), len(mouth))
    if n < 50 or float(np.std(mouth[:n])) == 0.0 or float(np.std(rms[:n])) == 0.0:
        return None
    m = (mouth[:n] - mouth[:n].mean()) / mouth[:n].std()
    a = (rms[:n] - rms[:n].mean()) / rms[:n].std()
    best_lag, best = 0, -np.inf
    for lag in range(-8, 9):
        if lag >= 0:
            c = float(np.dot(m[lag:], a[: n - lag])) / (n - lag)
        else:
            c = float(np.dot(m[: n + lag], a[-lag:])) / (n + lag)
        if c > best:
            best, best_lag = c, lag
    return best_lag * 1000.0 / fps
