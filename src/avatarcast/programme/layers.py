"""Cached programme layers: redraw only the part of a frame that changed since it was drawn.

Most programme frames differ from the previous one only where the avatar moved (its mouth
every frame, eyes and a slight sway now and then) and under the caption. So the compositor
keeps three things:

* the *static* frame: backdrop, product card and AI label, rebuilt when the card changes;
* per avatar pose (body and head position, eye state) a *tile*: the static frame under the
  avatar's box with body and head drawn on it, and the card and label put back on top;
* per output buffer what it holds: which static frame and which boxes were drawn over it.

A frame into a buffer that already holds the same static frame then costs: the boxes the last
frame drew put back from the static frame, one tile copy, the mouth stamp, the caption blend.
If the buffer already holds the same pose's tile (most frames: only the mouth moved), the tile
is not copied again: only the boxes drawn over it (mouth, caption) are put back from it. A
portrait tile reaches down to the frame's bottom edge (about a third of the frame), so this
halves the cost of composing a portrait frame.
The result is byte-identical to drawing every layer in order (backdrop, avatar, card, caption,
label), because card and label are opaque: where they overlap what was drawn before them,
copying them again from the static frame gives the pixels drawing them would.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.base import Box, LayeredRenderer, Pose
from avatarcast.yuv import YuvFrame

__all__ = ["FrameLayers", "StaticBuilder", "clip_box", "copy_box", "intersect"]

StaticBuilder = Callable[[], tuple[YuvFrame, list[Box]]]
"""Makes the static frame and the boxes of its opaque layers drawn over the avatar."""

#: bytes of pose tiles kept per compositor. About 40 distinct poses come up in a minute of the
#: demo; a 720p tile is ~0.35 MB (all 40 fit), a 720x1280 one (the body reaches the frame's
#: bottom) ~1.2 MB: a count of 48 grew to 59 MB per portrait view within 5 minutes. With 20
#: portrait tiles a miss comes about 3.7 times a second instead of 2.1 (1.5 ms each: 0.002 CPU
#: s per media s more), for 35 MB less.
TILE_BYTES = 24 << 20
_BUFFERS = 8  # the runner rotates 3 output buffers; a few more cost nothing


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """``box`` within a ``width`` x ``height`` frame, widened to even edges; None if empty."""
    x, y, w, h = box
    x0, y0 = max(x - x % 2, 0), max(y - y % 2, 0)
    x1, y1 = min(x + w + (x + w) % 2, width), min(y + h + (y + h) % 2, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def intersect(a: Box, b: Box) -> Box | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x0, y0, x1 - x0, y1 - y0


def _contains(outer: Box, inner: Box) -> bool:
    return intersect(outer, inner) == inner


def copy_box(dst: YuvFrame, src: YuvFrame, box: Box) -> None:
    """Copy the even-aligned ``box`` of ``src`` into the same place of ``dst`` (same size)."""
    x, y, w, h = box
    dst.y[y : y + h, x : x + w] = src.y[y : y + h, x : x + w]
    cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
    dst.u[cy : cy + ch, cx : cx + cw] = src.u[cy : cy + ch, cx : cx + cw]
    dst.v[cy : cy + ch, cx : cx + cw] = src.v[cy : cy + ch, cx : cx + cw]


@dataclass(slots=True)
class _Tile:
    """The planes of ``box`` (even-aligned) of a frame."""

    box: Box
    y: npt.NDArray[np.uint8]
    u: npt.NDArray[np.uint8]
    v: npt.NDArray[np.uint8]

    @classmethod
    def cut(cls, frame: YuvFrame, box: Box) -> _Tile:
        x, y, w, h = box
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        return cls(
            box,
            frame.y[y : y + h, x : x + w].copy(),
            frame.u[cy : cy + ch, cx : cx + cw].copy(),
            frame.v[cy : cy + ch, cx : cx + cw].copy(),
        )

    @property
    def nbytes(self) -> int:
        return self.y.nbytes + self.u.nbytes + self.v.nbytes

    def paste(self, out: YuvFrame) -> None:
        x, y, w, h = self.box
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        out.y[y : y + h, x : x + w] = self.y
        out.u[cy : cy + ch, cx : cx + cw] = self.u
        out.v[cy : cy + ch, cx : cx + cw] = self.v

    def paste_part(self, out: YuvFrame, box: Box) -> None:
        """The part of the tile inside the even-aligned ``box`` (nothing if they miss)."""
        part = intersect(self.box, box)
        if part is None:
            return
        x, y, w, h = part
        tx, ty = x - self.box[0], y - self.box[1]
        out.y[y : y + h, x : x + w] = self.y[ty : ty + h, tx : tx + w]
        cx, cy, cw, ch, tcx, tcy = x // 2, y // 2, w // 2, h // 2, tx // 2, ty // 2
        out.u[cy : cy + ch, cx : cx + cw] = self.u[tcy : tcy + ch, tcx : tcx + cw]
        out.v[cy : cy + ch, cx : cx + cw] = self.v[tcy : tcy + ch, tcx : tcx + cw]


@dataclass(slots=True)
class _Painted:
    frame: YuvFrame  # held so its id is not reused while it is remembered here
    static: YuvFrame
    boxes: list[Box]
    tile: _Tile | None = None  # the pose tile under ``boxes`` (its box is the first one)


class FrameLayers:
    """The caches described in the module docstring, for one compositor (one thread)."""

    def __init__(self, renderer: LayeredRenderer, width: int, height: int) -> None:
        self._renderer = renderer
        self.width, self.height = width, height
        self._static: YuvFrame | None = None
        self._static_key: object = None
        self._opaque: list[Box] = []  # card and label boxes, on top of the avatar
        self._tiles: OrderedDict[tuple[object, ...], _Tile] = OrderedDict()
        self.tile_bytes = 0  # held by ``_tiles``
        self._painted: OrderedDict[int, _Painted] = OrderedDict()
        self._scratch = YuvFrame(width, height)
        self.hits = 0
        self.misses = 0
        self.kept = 0  # of the hits, frames whose buffer already held the tile (no copy)

    def static(self, key: object, build: StaticBuilder) -> YuvFrame:
        """The static frame for ``key`` (built by ``build`` when another object is passed)."""
        if self._static is None or key is not self._static_key:
            self._static, self._opaque = build()
            self._static_key = key
            self._tiles.clear()
            self.tile_bytes = 0
        return self._static

    def forget(self, out: YuvFrame) -> None:
        """``out`` was drawn some other way: the next frame into it starts from scratch."""
        self._painted.pop(id(out), None)

    def restore(self, out: YuvFrame, static: YuvFrame, pose: Pose | None) -> _Tile | None:
        """Make ``out`` equal to ``static`` again, copying only what was drawn over it (and
        not what the tile of ``pose`` is about to cover anyway).

        If ``out`` already holds the tile of ``pose``, it is kept: ``out`` is made equal to
        ``static`` with that tile on it, and the tile is returned (``draw_avatar`` then skips
        its copy)."""
        painted = self._painted.pop(id(out), None)
        if painted is None or painted.static is not static or painted.frame is not out:
            np.copyto(out.buf, static.buf)
            return None
        tile = self._tiles.get(pose.key) if pose is not None else None
        if tile is not None and painted.tile is tile:
            for box in painted.boxes[1:]:
                copy_box(out, static, box)
                tile.paste_part(out, box)
            return tile
        for box in painted.boxes:
            if tile is None or not _contains(tile.box, box):
                copy_box(out, static, box)
        return None

    def remember(
        self, out: YuvFrame, static: YuvFrame, boxes: list[Box], tile: _Tile | None = None
    ) -> None:
        """``out`` now holds ``static`` with ``boxes`` drawn over it (``tile``'s box first)."""
        self._painted[id(out)] = _Painted(out, static, boxes, tile)
        while len(self._painted) > _BUFFERS:
            self._painted.popitem(last=False)

    def draw_avatar(
        self, out: YuvFrame, static: YuvFrame, pose: Pose, present: _Tile | None = None
    ) -> tuple[list[Box], _Tile | None]:
        """Body, head (from the tile of ``pose``, unless ``present`` says ``out`` holds it)
        and mouth into ``out``; the boxes drawn, the tile's first, and the tile."""
        drawn: list[Box] = []
        tile = present if present is not None else self._tile(static, pose)
        if present is not None:
            self.hits += 1
            self.kept += 1
            self._tiles.move_to_end(pose.key)
        elif tile is not None:
            tile.paste(out)
        if tile is not None:
            drawn.append(tile.box)
        mouth = clip_box(pose.mouth_box, self.width, self.height)
        if mouth is not None:
            self._renderer.draw_mouth(out, pose)
            self._put_back_opaque(out, static, mouth)
            drawn.append(mouth)
        return drawn, tile

    def put_back_label(self, out: YuvFrame, static: YuvFrame, box: Box) -> None:
        """The label over ``box`` again (after a caption blend there)."""
        if self._opaque:
            part = intersect(self._opaque[-1], box)
            if part is not None:
                copy_box(out, static, part)

    def _put_back_opaque(self, out: YuvFrame, static: YuvFrame, box: Box) -> None:
        for opaque in self._opaque:
            part = intersect(opaque, box)
            if part is not None:
                copy_box(out, static, part)

    def _tile(self, static: YuvFrame, pose: Pose) -> _Tile | None:
        tile = self._tiles.get(pose.key)
        if tile is not None:
            self._tiles.move_to_end(pose.key)
            self.hits += 1
            return tile
        self.misses += 1
        box = clip_box(_union(pose.body, pose.head), self.width, self.height)
        if box is None:
            return None
        scratch = self._scratch
        copy_box(scratch, static, box)
        self._renderer.draw_pose(scratch, pose)
        self._put_back_opaque(scratch, static, box)
        tile = self._tiles[pose.key] = _Tile.cut(scratch, box)
        self.tile_bytes += tile.nbytes
        while self.tile_bytes > TILE_BYTES and len(self._tiles) > 1:
            self.tile_bytes -= self._tiles.popitem(last=False)[1].nbytes
        return tile
