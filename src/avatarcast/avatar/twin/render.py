"""Draw the twin: the idle-loop frame, and the engine's mouth blended into its mouth box.

Every loop frame is scaled and placed for the view once, at start-up, so a frame costs one
copy of the prepared picture plus a blend of the mouth box (about 100x100 pixels at 720p):
resize the engine's crop, shift its colour so its mask border matches the frame's, and mix it
in through the feathered mask. No seam: the mask fades to zero before the box's edge, and the
colour shift makes the crop agree with the frame where the fade happens.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.render import AvatarFraming
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.engine import MouthCrop, MouthEngine
from avatarcast.avatar.twin.eyes import EyeLids
from avatarcast.avatar.twin.loopcache import shared_loop
from avatarcast.yuv import YuvFrame, rgb_to_yuv_planes

__all__ = ["TwinRenderer", "landscape_framing"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
_RING = (0.03, 0.5)  # the mask values counted as its border ring (for colour matching)
_CROP_CACHE = 128
_MAX_SHIFT = 24.0  # a colour shift larger than this is a bad crop: clamp, never recolour a face


def _even(v: float) -> int:
    return 2 * round(v / 2)


def landscape_framing(clip: TwinClip, width: int, height: int) -> AvatarFraming:
    """The loop scaled to cover the frame, the face centred across where the loop allows."""
    lw, lh = clip.size
    s = max(width / lw, height / lh)
    x = width / 2 - clip.pack.head_cx * s
    x = min(0.0, max(width - lw * s, x))
    return AvatarFraming(scale=s, x=_even(x), y=_even((height - lh * s) / 2), extend_to=height)


class TwinRenderer:
    """An ``AvatarRenderer`` for a twin pack (not layered: every frame is a new picture)."""

    def __init__(
        self,
        clip: TwinClip,
        engine: MouthEngine,
        *,
        frame_width: int,
        frame_height: int,
        framing: AvatarFraming | None = None,
    ) -> None:
        self.clip = clip
        self.engine = engine
        self.name = clip.pack.name
        self.width, self.height = frame_width, frame_height
        self.framing = framing or landscape_framing(clip, frame_width, frame_height)
        self._frames = self._placed_loop()
        s = self.framing.scale
        mw, mh = clip.pack.mouth_boxes[0][2:]
        self._box_w, self._box_h = max(2, _even(mw * s)), max(2, _even(mh * s))
        mask = Image.fromarray(np.rint(clip.mask * 255).astype(np.uint8))
        m = np.asarray(mask.resize((self._box_w, self._box_h), Image.Resampling.BILINEAR))
        self._mask: F32 = m.astype(np.float32) / 255.0
        self._mask2: F32 = self._mask.reshape(self._box_h // 2, 2, self._box_w // 2, 2).mean(
            axis=(1, 3)
        )
        self._ring = (self._mask > _RING[0]) & (self._mask < _RING[1])
        self._ring2 = (self._mask2 > _RING[0]) & (self._mask2 < _RING[1])
        self._ring_means: dict[int, tuple[float, float, float]] = {}
        self._crops: OrderedDict[int, tuple[U8, tuple[tuple[F32, float], ...]]] = OrderedDict()
        self._lids = self._eyelids()

    # --- placement ----------------------------------------------------------------------

    def _placed_loop(self) -> list[YuvFrame]:
        """Every loop frame placed for this view. A view that is not the loop's own size and
        place (portrait, 1080p) shares its placed loop like the clip shares the decoded one
        (``loopcache``): 141 MB at 720x1280, placed once per machine instead of per stream."""
        clip, fr, w, h = self.clip, self.framing, self.width, self.height
        n = clip.loop_len
        if not self._as_recorded() and clip.cache_dir is not None:
            key = f"{clip.loop_key}-view-{w}x{h}-{fr.scale:.6f}-{fr.x}-{fr.y}"
            frames = (self._place(clip.frame(i)).buf for i in range(n))
            shared = shared_loop(key, (n, w * h * 3 // 2), lambda: frames, directory=clip.cache_dir)
            if shared is not None:
                return [YuvFrame(w, h, shared[i]) for i in range(n)]
        return [self._place(clip.frame(i)) for i in range(n)]

    def _as_recorded(self) -> bool:
        """The view shows the loop's frames as they are (same size, not moved)."""
        fr, size = self.framing, (self.width, self.height)
        return fr.scale == 1.0 and (fr.x, fr.y) == (0, 0) and self.clip.size == size

    def _place(self, src: YuvFrame) -> YuvFrame:
        """One loop frame scaled and placed for this view; edges repeat where it falls short.
        Each plane is resized on its own (no colour conversion): a few ms a frame."""
        if self._as_recorded():
            return src
        fr = self.framing
        out = YuvFrame(self.width, self.height)
        for dst, plane, k in ((out.y, src.y, 1), (out.u, src.u, 2), (out.v, src.v, 2)):
            w = max(1, round(src.width * fr.scale / k))
            h = max(1, round(src.height * fr.scale / k))
            img = np.asarray(Image.fromarray(plane).resize((w, h), Image.Resampling.BILINEAR))
            ys = np.clip(np.arange(dst.shape[0]) - fr.y // k, 0, h - 1)
            xs = np.clip(np.arange(dst.shape[1]) - fr.x // k, 0, w - 1)
            dst[...] = img[ys][:, xs]
        return out

    def _box_at(self, frame: int) -> tuple[int, int]:
        x, y, _, _ = self.clip.mouth_box(frame)
        fr = self.framing
        return _even(fr.x + x * fr.scale), _even(fr.y + y * fr.scale)

    def mouth_box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in frame pixels holding the mouth box of every loop frame."""
        pts = [self._box_at(i) for i in range(self.clip.loop_len)]
        x0, y0 = min(p[0] for p in pts), min(p[1] for p in pts)
        x1 = max(p[0] for p in pts) + self._box_w
        y1 = max(p[1] for p in pts) + self._box_h
        x0, y0 = max(0, x0), max(0, y0)
        return x0, y0, min(self.width, x1) - x0, min(self.height, y1) - y0

    # --- drawing ------------------------------------------------------------------------

    def idle_frame(self, frame: int) -> YuvFrame:
        """Programme frame ``frame``'s idle picture as this view shows it (read-only)."""
        return self._frames[frame % len(self._frames)]

    def _eyelids(self) -> EyeLids | None:
        """A photo's loop has no blinks of its own: its eyes close on the animator's."""
        pack = self.clip.pack
        if pack.source_kind != "photo" or not pack.eye_boxes:
            return None
        fr = self.framing
        s = fr.scale
        eyes = [(fr.x + x * s, fr.y + y * s, w * s, h * s) for x, y, w, h in pack.eye_boxes]
        x0, y0 = pack.mouth_boxes[0][:2]
        shifts = [((b[0] - x0) * s, (b[1] - y0) * s) for b in pack.mouth_boxes]
        return EyeLids(eyes, shifts, (self.width, self.height))

    def draw(self, frame: YuvFrame, state: AvatarState) -> None:
        n = max(state.frame, 0)
        np.copyto(frame.buf, self._frames[n % len(self._frames)].buf)
        if self._lids is not None:
            self._lids.draw(frame, n, state.blink)
        crop = self.engine.mouth(n, state)
        if crop is not None and crop.weight > 0.0:
            self.draw_crop(frame, n, crop)

    def draw_crop(self, frame: YuvFrame, n: int, crop: MouthCrop) -> None:
        """Blend ``crop`` (canonical mouth space) into ``frame``'s mouth box of loop frame n."""
        x, y = self._box_at(n)
        w, h = self._box_w, self._box_h
        if x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            return  # the mouth is outside this view (a tight crop): nothing to draw
        planes = self._planes(crop)
        ry, ru, rv = self._ring_mean(n, x, y)
        a = self._mask * crop.weight
        a2 = self._mask2 * crop.weight
        cx, cy = x // 2, y // 2
        for dst, (p, ring_mean), alpha, target in (
            (frame.y[y : y + h, x : x + w], planes[0], a, ry),
            (frame.u[cy : cy + h // 2, cx : cx + w // 2], planes[1], a2, ru),
            (frame.v[cy : cy + h // 2, cx : cx + w // 2], planes[2], a2, rv),
        ):
            shift = float(np.clip(target - ring_mean, -_MAX_SHIFT, _MAX_SHIFT))
            d = dst.astype(np.float32)
            dst[...] = np.clip(np.rint(d + (p + shift - d) * alpha), 0, 255).astype(np.uint8)

    def _planes(self, crop: MouthCrop) -> tuple[tuple[F32, float], ...]:
        """``crop`` at this view's box size as float Y, U, V planes with their ring means.
        Engines that repeat a crop object (``patches`` does) pay for this once."""
        key = id(crop.rgb)
        hit = self._crops.get(key)
        if hit is not None and hit[0] is crop.rgb:
            self._crops.move_to_end(key)
            return hit[1]
        img = Image.fromarray(crop.rgb).resize(
            (self._box_w, self._box_h), Image.Resampling.BILINEAR
        )
        py, pu, pv = (q.astype(np.float32) for q in rgb_to_yuv_planes(np.asarray(img, np.uint8)))
        planes = (
            (py, float(py[self._ring].mean())),
            (pu, float(pu[self._ring2].mean())),
            (pv, float(pv[self._ring2].mean())),
        )
        self._crops[key] = (crop.rgb, planes)  # holding the array keeps its id unique
        if len(self._crops) > _CROP_CACHE:
            self._crops.popitem(last=False)
        return planes

    def _ring_mean(self, n: int, x: int, y: int) -> tuple[float, float, float]:
        """The idle frame's mean Y, U, V over the mask's border ring (cached per loop frame)."""
        i = n % len(self._frames)
        got = self._ring_means.get(i)
        if got is None:
            f = self._frames[i]
            w, h = self._box_w, self._box_h
            cy, cx = y // 2, x // 2
            got = (
                float(f.y[y : y + h, x : x + w][self._ring].mean()),
                float(f.u[cy : cy + h // 2, cx : cx + w // 2][self._ring2].mean()),
                float(f.v[cy : cy + h // 2, cx : cx + w // 2][self._ring2].mean()),
            )
            self._ring_means[i] = got
        return got

    def fills_frame(self) -> bool:
        """Every frame is the placed loop frame, edge to edge (``FullFrameRenderer``)."""
        return True

    def render_background(self, width: int | None = None, height: int | None = None) -> None:
        """A twin brings its own background (the recording's): the compositor's stays."""
        return None
