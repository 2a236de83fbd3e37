"""The ``onnx`` engine as a twin's mouth engine, with ``patches`` behind it.

The model sees one reference face of the pack (loop frame 0, its face box squared and
reaching below the mouth box) and returns crops whose mouth box, resized to the pack's
canonical mouth size, the twin renderer blends into each frame's own mouth box. While the
model rests after a fallback, the pack's ``patches`` engine (always told of every chunk)
answers instead, so the switch is one frame boundary, not a gap.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.neural.engine import (
    EngineName,
    EngineSwitch,
    OnnxMouthEngine,
    OnnxMouthStatus,
)
from avatarcast.avatar.neural.face import FaceRef, face_ref
from avatarcast.avatar.neural.manifest import find_pack_model, load_manifest
from avatarcast.avatar.neural.model import MouthModel
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.engine import MouthCrop
from avatarcast.avatar.twin.patches import PatchesEngine
from avatarcast.frames import SpeechChunk

__all__ = ["OnnxTwinEngine", "find_model", "twin_face_ref"]


def find_model(clip: TwinClip, model: str | Path | None) -> Path:
    """The named manifest (a path), else the pack's only one in its ``mouth/`` folder."""
    if model is not None:
        return Path(model)
    return find_pack_model(clip.pack.root, None)


def twin_face_ref(clip: TwinClip, crop_size: int, mask_top: float) -> FaceRef:
    """Loop frame 0's face, as a square that holds the mouth box with room below it."""
    fx, fy, fw, fh = clip.face_box(0)
    mx, my, mw, mh = clip.mouth_box(0)
    w, h = clip.size
    bottom = max(fy + fh, my + mh + mh // 4)
    side = min(max(fw, bottom - fy), w, h)
    cx = fx + fw // 2
    x = min(max(0, cx - side // 2), w - side)
    y = min(max(0, bottom - side), h - side)
    return face_ref(
        clip.rgb(0),
        (x, y, side, side),
        crop_size,
        mask_top=mask_top,
        mouth_box=(mx, my, mw, mh),
        mouth_size=clip.mouth_size,
    )


class OnnxTwinEngine:
    """A ``MouthEngine`` (``avatar.twin.engine``) running a user's lip-sync model."""

    name = "onnx"

    def __init__(
        self,
        clip: TwinClip,
        *,
        fps: int,
        model: str | Path | None = None,
        live: bool = True,
        threads: int = 1,
        use_gpu: bool = True,
        on_switch: Callable[[EngineSwitch], None] | None = None,
    ) -> None:
        loaded = load_manifest(find_model(clip, model))
        net = MouthModel(loaded, threads=threads, use_gpu=use_gpu)
        face = twin_face_ref(clip, net.spec.crop_size, net.spec.mask_top)
        self.patches = PatchesEngine(clip, fps=fps)
        self._listener = on_switch
        #: the latest engine switches, newest last (status and tests read them)
        self.switches: deque[EngineSwitch] = deque(maxlen=20)
        self.neural = OnnxMouthEngine(net, face, fps=fps, live=live, on_switch=self._switched)
        self._lock = threading.Lock()
        self._last: tuple[int, MouthCrop | None] | None = None
        #: whether the chunk on air is the model's (a chunk that began on patches ends there,
        #: even when the model's rest ends while it plays)
        self._on_model = True

    def _switched(self, event: EngineSwitch) -> None:
        self.switches.append(event)
        if self._listener is not None:
            self._listener(event)

    def prepare(self, chunk: SpeechChunk) -> None:
        """``chunk`` is voiced and will air next: render its crops before its frames come."""
        self.neural.prepare(chunk)

    def speak(self, chunk: SpeechChunk, start_frame: int) -> None:
        self.patches.speak(chunk, start_frame)
        self.neural.start_chunk(chunk, start_frame)
        self._on_model = self.neural.engine == "onnx"

    def stop(self, frame: int) -> None:
        self.patches.stop(frame)
        self.neural.stop_chunk(frame)

    def mouth(self, frame: int, state: AvatarState) -> MouthCrop | None:
        with self._lock:  # several views ask for the same frame: one answer for all
            if self._last is not None and self._last[0] == frame:
                return self._last[1]
            answer = self._answer(frame, state)
            self._last = (frame, answer)
            return answer

    def _answer(self, frame: int, state: AvatarState) -> MouthCrop | None:
        if self.engine == "patches":
            return self.patches.mouth(frame, state)
        crop = self.neural.crop(frame)
        if crop is None or crop.mouth is None:
            return None
        return MouthCrop(rgb=crop.mouth)

    @property
    def engine(self) -> EngineName:
        """The engine drawing mouths now: ``onnx``, or ``patches`` while the model rests."""
        return "onnx" if self._on_model and self.neural.engine == "onnx" else "patches"

    def status(self) -> OnnxMouthStatus:
        return replace(self.neural.status(), engine=self.engine)

    def switch_to_fallback(self, reason: str) -> bool:
        """The ``switch_engine`` remedy's hook (``pipeline.remedies.EngineSwitch``)."""
        return self.neural.switch_to_fallback(reason)

    def close(self) -> None:
        self.neural.close()
        self.patches.close()
