"""A twin pack in memory: the idle loop's frames, its mouth boxes, the mask and the patches.

Loaded once per stream and shared by the engine and every view's renderer; nothing here
changes after loading. The loop's frames are mapped read-only from a file decoded once per
machine (``loopcache``: 141 MB at 720p held once for every stream of the pack, and no decode
at a stream's start) unless ``share_loop`` is False.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.avatar.twin.loopcache import default_cache_dir, shared_loop
from avatarcast.avatar.twin.pack import Box, TwinPack, file_sha256, load_twin
from avatarcast.avatar.visemes import VISEMES
from avatarcast.errors import ConfigError
from avatarcast.yuv import YuvFrame

__all__ = ["TwinClip", "yuv_to_rgb"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def yuv_to_rgb(frame: YuvFrame) -> U8:
    """BT.601 limited range yuv420p to RGB (h, w, 3) uint8 (chroma upsampled by repetition)."""
    y = frame.y.astype(np.float32) - 16.0
    u = np.repeat(np.repeat(frame.u, 2, axis=0), 2, axis=1).astype(np.float32) - 128.0
    v = np.repeat(np.repeat(frame.v, 2, axis=0), 2, axis=1).astype(np.float32) - 128.0
    r = 1.164383 * y + 1.596027 * v
    g = 1.164383 * y - 0.391762 * u - 0.812968 * v
    b = 1.164383 * y + 2.017232 * u
    out: U8 = np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)
    return out


class TwinClip:
    """What engines and renderers read of a pack (see ``avatar.twin.engine``)."""

    def __init__(
        self, pack: TwinPack, *, share_loop: bool = True, cache_dir: Path | None = None
    ) -> None:
        """``cache_dir``: where the decoded loop is shared (None: a private folder under the
        temp dir); ``share_loop`` False keeps this clip's loop in its own memory."""
        self.pack = pack
        self.fps = pack.fps
        self.size = pack.size
        self.mouth_size = pack.mouth_size
        self.cache_dir = (cache_dir or default_cache_dir()) if share_loop else None
        """Where views share their placed loops too (None: each keeps its own)."""
        self.loop_key = _loop_key(pack)
        self._frames = _load_loop(pack, self.loop_key, self.cache_dir)
        self.mask = _load_mask(pack.path("mask.png"), pack.mouth_size)
        self.patches = _load_patches(pack.path("patches.npz"), pack.mouth_size)

    @classmethod
    def open(cls, manifest: Path, *, share_loop: bool = True) -> TwinClip:
        return cls(load_twin(manifest), share_loop=share_loop)

    @property
    def loop_len(self) -> int:
        return len(self._frames)

    def index(self, frame: int) -> int:
        """The loop frame that programme frame ``frame`` shows."""
        return frame % len(self._frames)

    def frame(self, frame: int) -> YuvFrame:
        """Programme frame ``frame``'s idle picture (read-only: copy before drawing on it)."""
        return self._frames[frame % len(self._frames)]

    def rgb(self, frame: int) -> U8:
        """The same picture as RGB (converted on each call: engines cache what they need)."""
        return yuv_to_rgb(self.frame(frame))

    def mouth_box(self, frame: int) -> Box:
        """(x, y, w, h) in loop pixels of the mouth/jaw region in frame ``frame``; a crop of
        it resized to ``mouth_size`` is the canonical mouth space."""
        return self.pack.mouth_boxes[frame % len(self._frames)]

    def face_box(self, frame: int) -> Box:
        return self.pack.face_boxes[frame % len(self._frames)]

    def mouth_crop(self, frame: int) -> U8:
        """The idle frame's own mouth box, RGB at ``mouth_size`` (for engines that edit it)."""
        x, y, w, h = self.mouth_box(frame)
        img = Image.fromarray(_crop(self.rgb(frame), x, y, w, h))
        return np.asarray(img.resize(self.mouth_size, Image.Resampling.BILINEAR), np.uint8)


def _crop(rgb: U8, x: int, y: int, w: int, h: int) -> U8:
    """``rgb[y:y+h, x:x+w]``, the edge pixels repeated where the box leaves the image."""
    hh, ww = rgb.shape[:2]
    ys = np.clip(np.arange(y, y + h), 0, hh - 1)
    xs = np.clip(np.arange(x, x + w), 0, ww - 1)
    return rgb[ys][:, xs]


def _loop_key(pack: TwinPack) -> str:
    w, h = pack.size
    return f"{file_sha256(pack.path('idle.mp4'))}-{w}x{h}-{pack.loop_frames}"


def _load_loop(pack: TwinPack, key: str, cache_dir: Path | None) -> list[YuvFrame]:
    w, h = pack.size
    path = pack.path("idle.mp4")
    shared = shared_loop(
        key,
        (pack.loop_frames, w * h * 3 // 2),
        lambda: _iter_loop(path, pack),
        directory=cache_dir,
    )
    if shared is not None:
        return [YuvFrame(w, h, shared[i]) for i in range(pack.loop_frames)]
    frames = [YuvFrame(w, h, f) for f in _iter_loop(path, pack)]
    if len(frames) != pack.loop_frames:
        raise ConfigError(
            f"twin pack {pack.name}: idle.mp4 has {len(frames)} frames, the manifest says "
            f"{pack.loop_frames}",
            field="avatar",
        )
    return frames


def _iter_loop(path: Path, pack: TwinPack) -> Iterator[U8]:
    """The loop's frames as flat yuv420p arrays, checked against the manifest's size."""
    w, h = pack.size
    try:
        with av.open(str(path)) as container:
            for f in container.decode(video=0):
                if f.width != w or f.height != h:
                    raise ConfigError(
                        f"twin pack {pack.name}: idle.mp4 is {f.width}x{f.height}, the "
                        f"manifest says {w}x{h}",
                        field="avatar",
                    )
                arr: U8 = np.ascontiguousarray(f.to_ndarray(format="yuv420p"), np.uint8)
                yield arr.reshape(-1)
    except av.FFmpegError as e:
        raise ConfigError(f"twin pack {pack.name}: cannot decode idle.mp4: {e}") from e


def _load_mask(path: Path, size: tuple[int, int]) -> F32:
    with Image.open(path) as img:
        mask = np.asarray(img.convert("L"), np.float32) / 255.0
    if mask.shape != (size[1], size[0]):
        raise ConfigError(f"twin pack {path.parent.name}: mask.png is not {size[0]}x{size[1]}")
    return mask


def _load_patches(path: Path, size: tuple[int, int]) -> dict[str, U8]:
    """One patch per viseme, and any transitions ``"A>B"`` between two visemes."""
    with np.load(path) as data:
        patches = {k: np.asarray(data[k], np.uint8) for k in data.files}
    for v in VISEMES:
        if v not in patches:
            raise ConfigError(f"twin pack {path.parent.name}: patches.npz has no {v!r} patch")
    for k, p in patches.items():
        pair = k.split(">")
        if k not in VISEMES and (len(pair) != 2 or not set(pair) <= set(VISEMES)):
            raise ConfigError(
                f"twin pack {path.parent.name}: patches.npz has a patch {k!r} that is neither "
                "a viseme nor a transition 'A>B' between two"
            )
        if p.shape != (size[1], size[0], 3):
            raise ConfigError(
                f"twin pack {path.parent.name}: patch {k!r} is {p.shape}, expected "
                f"{(size[1], size[0], 3)}"
            )
    return patches
