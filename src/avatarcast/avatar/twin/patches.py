"""The ``patches`` mouth engine: the host's own mouth, cut per viseme, no weights.

Each frame's viseme and opening (from the voice's phoneme timings, via the animator) pick a
patch; where the opening falls between the viseme's patch and its neighbours in openness, two
patches crossfade, so the mouth moves as smoothly as the animator's ``mouth_open`` does. Only
``mouth_open`` and ``viseme`` matter: the engine is stateless per frame, so render and replay
draw the same mouth for the same frame whatever order the views ask in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.engine import MouthCrop
from avatarcast.avatar.visemes import OPENNESS
from avatarcast.frames import SpeechChunk

__all__ = ["PatchesEngine"]

SHAPE_TOLERANCE = 0.15
"""How far ``mouth_open`` may stray from a viseme's own openness and still show its patch."""
FADE_IN = 0.08
"""Below this opening the first patch fades in over the idle loop's closed mouth."""
_STEPS = 32  # openings are quantised to 1/32: the cache stays small, the steps invisible
_CACHE = 256


class PatchesEngine:
    name = "patches"

    def __init__(self, clip: TwinClip, *, fps: int) -> None:
        self._clip = clip
        self.fps = fps
        self._patches = {v: p.astype(np.float32) for v, p in clip.patches.items()}
        opened = [(o, v) for v, o in clip.pack.openness.items() if v not in ("rest", "MBP")]
        self._ladder = sorted(opened)
        self._cache: OrderedDict[tuple[str, int], MouthCrop | None] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self, chunk: SpeechChunk) -> None:
        """Nothing to render ahead: a patch is a lookup."""

    def speak(self, chunk: SpeechChunk, start_frame: int) -> None:
        """Nothing to prepare: the animator's track already says which viseme shows when."""

    def stop(self, frame: int) -> None:
        """Nothing to drop: a cut sentence's frames arrive as ``rest`` from the animator."""

    def close(self) -> None:
        with self._lock:
            self._cache.clear()

    def mouth(self, frame: int, state: AvatarState) -> MouthCrop | None:
        o = state.mouth_open if state.mouth_open == state.mouth_open else 0.0
        q = round(min(max(o, 0.0), 1.0) * _STEPS)
        key = (state.viseme if state.viseme in self._patches else "?", q)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        crop = self._make(key[0], q / _STEPS)
        with self._lock:
            self._cache[key] = crop
            if len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        return crop

    def _make(self, viseme: str, o: float) -> MouthCrop | None:
        if viseme == "MBP":
            return MouthCrop(rgb=self._clip.patches["MBP"])
        if o <= 0.0:
            return None
        nominal = OPENNESS.get(viseme)
        if nominal is not None and viseme != "rest" and abs(nominal - o) <= SHAPE_TOLERANCE:
            rgb = self._patches[viseme]
        else:
            rgb = self._between(o)
        weight = min(1.0, o / FADE_IN)
        return MouthCrop(rgb=np.clip(np.rint(rgb), 0, 255).astype(np.uint8), weight=weight)

    def _between(self, o: float) -> npt.NDArray[np.float32]:
        """The two patches nearest ``o`` in openness, crossfaded by where ``o`` lies."""
        ladder = self._ladder
        if o <= ladder[0][0]:
            return self._patches[ladder[0][1]]
        if o >= ladder[-1][0]:
            return self._patches[ladder[-1][1]]
        for (lo, a), (hi, b) in pairwise(ladder):
            if lo <= o <= hi:
                t = 0.0 if hi <= lo else (o - lo) / (hi - lo)
                return self._patches[a] * (1.0 - t) + self._patches[b] * t
        return self._patches[ladder[-1][1]]
