"""Test media without anyone's face in the repository: scikit-image's ``astronaut``.

The photograph (Eileen Collins, NASA, public domain) ships inside the scikit-image wheel, so
nothing is downloaded. :func:`make_test_video` turns it into a reproducible recording for a
video pack: a few seconds of silence with the mouth closed, then an espeak voice reading the
script, the mouth opening with the voice's loudness (the same mesh warp photo packs use), a
slight head sway and seeded blinks. Same arguments, same file.

The photograph has no sensor noise, so by default the recording is cleaner than any camera's:
between head movements its frames differ only by the encoder's rounding. ``noise`` adds a
camera's (seeded Gaussian grain, fixed to the sensor, not the scene: luma ``noise``, chroma
half that, in 8-bit levels) for measuring what a real recording costs the stream's encoder.
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.frames import SAMPLE_RATE, Sentence
from avatarcast.twinprep.faces import FaceFinder
from avatarcast.twinprep.scripts import reading_script
from avatarcast.twinprep.warp import mouth_warp
from avatarcast.voice.espeak import EspeakVoice

__all__ = ["astronaut", "make_test_video", "portrait_canvas"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def astronaut() -> U8:
    """The public-domain astronaut photograph (512x512 RGB) from scikit-image."""
    from skimage import data

    return np.asarray(data.astronaut(), np.uint8)  # type: ignore[no-untyped-call]


def portrait_canvas(width: int, height: int) -> tuple[U8, F32]:
    """The astronaut's head and shoulders framed in a ``width`` x ``height`` picture, and its
    68 landmarks there."""
    src = astronaut()
    crop = src[20:320, 90:390]  # head and shoulders, 300x300
    scale = height / crop.shape[0]
    side = round(crop.shape[0] * scale)
    img = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.LANCZOS))
    left = (width - side) // 2
    pad = ((0, 0), (max(0, left), max(0, width - side - left)), (0, 0))
    canvas = np.pad(img, pad, mode="edge")[:height, :width]
    finder = FaceFinder("astronaut")
    finder.add(0, canvas)
    return np.ascontiguousarray(canvas), finder.track().landmarks[0]


def _blink(img: U8, lm: F32, amount: float) -> U8:
    """Eyelids down by ``amount`` (0 open .. 1 shut): the eyes fill with the skin above them."""
    if amount <= 0:
        return img
    out = img.astype(np.float32)
    for eye in (lm[36:42], lm[42:48]):
        x0, x1 = int(eye[:, 0].min()) - 3, int(eye[:, 0].max()) + 4
        y0, y1 = int(eye[:, 1].min()) - 4, int(eye[:, 1].max()) + 4
        skin = out[max(0, y0 - 8) : y0 - 3, x0:x1].reshape(-1, 3).mean(axis=0)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        d = ((xx - cx) / ((x1 - x0) / 2)) ** 2 + ((yy - cy) / ((y1 - y0) / 2)) ** 2
        a = (np.clip(1.2 - d, 0, 1) * amount)[..., None]
        out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1 - a) + skin * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grain(img: U8, sigma: float, rng: np.random.Generator) -> U8:
    """Camera grain: one luma draw shared by the channels, and half as much per channel."""
    h, w = img.shape[:2]
    luma = rng.normal(0.0, sigma, (h, w, 1)).astype(np.float32)
    chroma = rng.normal(0.0, sigma / 2, (h, w, 3)).astype(np.float32)
    out: U8 = np.clip(np.rint(img + luma + chroma), 0, 255).astype(np.uint8)
    return out


def make_test_video(
    out: Path,
    *,
    lang: str = "en",
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    silence_s: float = 3.0,
    sentences: int | None = None,
    repeat: int = 1,
    seed: int = 0,
    noise: float = 0.0,
) -> Path:
    """Write the test recording to ``out`` (H.264 + AAC mp4) and return it: the first
    ``sentences`` of the script (all by default), read ``repeat`` times, with camera grain of
    ``noise`` levels (0: none)."""
    text = reading_script(lang)
    if sentences is not None:
        text = " ".join(s.strip() + "." for s in text.split(".")[:sentences] if s.strip())
    text = " ".join([text] * repeat)
    voice = EspeakVoice("espeak-nl-m" if lang == "nl" else "espeak-en-m")
    chunk = voice.synthesize_blocking(Sentence(text=text, lang=lang, source="template"))
    lead = np.zeros(round(silence_s * SAMPLE_RATE), np.int16)
    tail = np.zeros(SAMPLE_RATE // 2, np.int16)
    pcm = np.concatenate([lead, chunk.pcm, tail])
    spf = SAMPLE_RATE // fps
    n = len(pcm) // spf
    pcm = pcm[: n * spf]
    rms = np.sqrt((pcm.astype(np.float32).reshape(n, spf) ** 2).mean(axis=1))
    ref = float(np.percentile(rms[rms > 100], 90)) if (rms > 100).any() else 1.0
    env = np.clip(rms / ref, 0, 1) ** 0.7
    env[rms < 0.08 * ref] = 0.0
    base, lm = portrait_canvas(width, height)
    mouth_w = float(lm[54, 0] - lm[48, 0])
    rng = random.Random(seed)
    grain = np.random.default_rng(seed)
    blinks: set[int] = set()
    t = rng.uniform(1.0, 2.5)
    while t * fps < n:
        f = round(t * fps)
        blinks.update({f, f + 1, f + 2})
        t += rng.uniform(2.0, 4.5)
    with av.open(str(out), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = Fraction(1, fps)
        vs.options = {"crf": "16", "preset": "veryfast", "threads": "1"}
        vs.codec_context.thread_count = 1
        aus = c.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for i in range(n):
            img = mouth_warp(base, lm, jaw=0.42 * mouth_w * float(env[i]))
            img = _blink(img, lm, 1.0 if i in blinks else 0.0)
            dx = round(3 * np.sin(2 * np.pi * 0.13 * i / fps))
            dy = round(2 * np.sin(2 * np.pi * 0.21 * i / fps + 1.0))
            img = np.roll(np.roll(img, dy, axis=0), dx, axis=1)
            if noise > 0:
                img = _grain(img, noise, grain)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        step = 1024
        for k in range(0, len(pcm), step):
            part = pcm[k : k + step].reshape(1, -1)
            af = av.AudioFrame.from_ndarray(part, format="s16", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = k
            for p in aus.encode(af):
                c.mux(p)
        for p in aus.encode(None):
            c.mux(p)
    return out
