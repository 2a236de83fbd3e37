"""What the animator hands the renderer each frame, and what a renderer is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from avatarcast.yuv import YuvFrame


@dataclass(frozen=True, slots=True, kw_only=True)
class AvatarState:
    """The avatar's pose for one frame.

    ``viseme`` is a class name from ``avatar.visemes.VISEMES``; ``mouth_open`` (0 closed .. 1
    wide) is what lip-sync tests read. ``blink`` 0 is eyes open, 1 closed. Head offsets are in
    pixels at 720p; ``breath`` in -1..1 lifts the shoulders slightly. ``frame`` is the
    programme frame the state is for (-1: not tied to one), which a twin's idle loop follows.
    """

    viseme: str = "rest"
    mouth_open: float = 0.0
    blink: float = 0.0
    head_dx: float = 0.0
    head_dy: float = 0.0
    breath: float = 0.0
    frame: int = -1


class AvatarRenderer(Protocol):
    """Draws an avatar pack into a frame at a pose. Must be fast: called 25+ times a second."""

    name: str

    def draw(self, frame: YuvFrame, state: AvatarState) -> None: ...

    def mouth_box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in frame pixels that contains the mouth at any head offset."""
        ...


Box = tuple[int, int, int, int]
"""(x, y, w, h) in frame pixels, x and y even."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pose:
    """Where an avatar's layers go for one state: the body and head (``key`` identifies them)
    and the mouth, which changes from frame to frame while the rest mostly stays put."""

    key: tuple[object, ...]
    body: Box
    head: Box
    eyes: str
    mouth: str
    mouth_box: Box


@runtime_checkable
class LayeredRenderer(Protocol):
    """A renderer whose frames the compositor can cache: ``draw`` equals ``draw_pose`` then
    ``draw_mouth`` for ``pose(state)``, and a pose draws only inside its boxes."""

    def pose(self, state: AvatarState) -> Pose: ...

    def draw_pose(self, frame: YuvFrame, pose: Pose) -> None: ...

    def draw_mouth(self, frame: YuvFrame, pose: Pose) -> None: ...


@runtime_checkable
class FullFrameRenderer(Protocol):
    """A renderer whose ``draw`` paints every pixel of the frame (a twin's recorded loop), so
    the compositor need not lay its backdrop under it first."""

    def fills_frame(self) -> bool: ...
