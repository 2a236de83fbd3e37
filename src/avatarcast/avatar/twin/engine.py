"""What a mouth engine is: told each speech chunk ahead of play, asked per frame for a mouth.

The twin renderer draws frame ``n`` as the pack's idle-loop frame ``n % loop_len`` (mouth
closed) and, when the engine answers, blends the engine's mouth crop into that frame's mouth
box through the pack's feathered mouth/jaw mask, colour-matched to the frame. ``None`` means
"no mouth this frame": the idle loop shows, so a late or silent engine never freezes a frame.

Engines are made by :func:`create_engine` (by name: the pack manifest's ``engine``, or
``ProgrammeOptions.mouth_engine`` when set). One engine serves every view (layout) of a stream:
crops are in the pack's canonical mouth space, and each view scales and places them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.base import AvatarState
from avatarcast.errors import UnknownNameError
from avatarcast.frames import SpeechChunk

if TYPE_CHECKING:
    from avatarcast.avatar.twin.clip import TwinClip

__all__ = ["ENGINES", "MouthCrop", "MouthEngine", "create_engine"]

ENGINES: tuple[str, ...] = ("patches", "onnx")
"""Engine names :func:`create_engine` knows (``onnx`` needs ``avatarcast[neural]`` and a model)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MouthCrop:
    """The mouth for one frame, in the pack's canonical mouth space.

    ``rgb`` is (h, w, 3) uint8 with (w, h) == ``clip.mouth_size``: the pixels of the mouth box
    (``clip.mouth_box(n)``) as they should look. ``weight`` 0..1 fades it over the idle frame
    (1: fully the crop inside the mask).
    """

    rgb: npt.NDArray[np.uint8]
    weight: float = 1.0


class MouthEngine(Protocol):
    """A mouth engine. Calls come from two threads: ``speak``/``stop`` from the programme
    (event loop, before the frames they concern are planned), ``mouth`` from the compose
    worker; an engine guards its own state. Output must depend only on the calls, the pack
    and the seed (render and replay give identical frames)."""

    name: str

    def prepare(self, chunk: SpeechChunk) -> None:
        """``chunk`` is voiced and queued to air (start frame not known yet): an engine that
        renders ahead may start on it now (live only; chunks may be dropped unaired)."""
        ...

    def speak(self, chunk: SpeechChunk, start_frame: int) -> None:
        """``chunk`` starts playing at frame ``start_frame`` (its whole audio and phoneme timings
        are known now, before its first frame is composed)."""
        ...

    def stop(self, frame: int) -> None:
        """Speech ends before ``frame`` (a cut sentence): from there, answer ``None``."""
        ...

    def mouth(self, frame: int, state: AvatarState) -> MouthCrop | None:
        """The mouth for programme frame ``frame`` (``state`` is the animator's: viseme,
        mouth_open, blink...), or None for the idle loop's own closed mouth. Must return fast
        (the frame is due): an engine that renders ahead answers None when it is late."""
        ...

    def close(self) -> None: ...


def create_engine(
    name: str,
    *,
    clip: TwinClip,
    fps: int,
    seed: int = 0,
    model: str | None = None,
    live: bool = True,
) -> MouthEngine:
    """The engine called ``name`` for ``clip``; unknown names raise ``UnknownNameError``.

    ``model`` is the ``onnx`` engine's model (a ``.mouth.json``; None: the pack's own, in its
    ``mouth/`` folder). ``live`` False makes it wait for every crop (render, replay)."""
    if name == "patches":
        from avatarcast.avatar.twin.patches import PatchesEngine

        return PatchesEngine(clip, fps=fps)
    if name == "onnx":
        from avatarcast.avatar.neural.twin import OnnxTwinEngine

        return OnnxTwinEngine(clip, fps=fps, model=model, live=live)
    raise UnknownNameError("mouth engine", name, list(ENGINES), field="mouth_engine")
