"""The ``patches`` mouth engine: the host's own mouth, cut per viseme, no weights.

Each frame's viseme and opening (from the voice's phoneme timings, via the animator) pick a
patch; where the opening falls between the viseme's patch and its neighbours in openness, two
patches crossfade, so the mouth moves as smoothly as the animator's ``mouth_open`` does.

On the first frame of a new viseme the mouth is between two shapes: the pack's transition
patch for that pair (``"A>B"`` in ``patches.npz``, cut where the recording moves from A to B)
shows there when the recording had one, else the two visemes' mouths crossfade half and half.
The previous frame's viseme comes from the chunk's own track (``speak``), so a frame's mouth
depends only on the calls, the frame index and its state: render and replay draw the same
mouth whatever order the views ask in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.animator import track_for_chunk
from avatarcast.avatar.base import AvatarState
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.engine import MouthCrop
from avatarcast.avatar.visemes import OPENNESS
from avatarcast.frames import SpeechChunk

__all__ = ["PatchesEngine", "transition_key"]

SHAPE_TOLERANCE = 0.15
"""How far ``mouth_open`` may stray from a viseme's own openness and still show its patch."""
FADE_IN = 0.08
"""Below this opening the first patch fades in over the idle loop's closed mouth."""
_STEPS = 32  # openings are quantised to 1/32: the cache stays small, the steps invisible
_CACHE = 256
_MIXES = 64  # half-and-half crossfades kept (one per pair of crops, ~93 KB each at 176 px)
_TRACKS = 4  # chunks remembered: frames of the last chunk may be composed after the next starts
_Key = tuple[str | None, str, int]


def transition_key(a: str, b: str) -> str:
    """The ``patches.npz`` key of the mouth between viseme ``a`` and the next, ``b``."""
    return f"{a}>{b}"


@dataclass(frozen=True, slots=True)
class _Track:
    start: int
    stop: int
    visemes: tuple[str, ...]


class PatchesEngine:
    name = "patches"

    def __init__(self, clip: TwinClip, *, fps: int, transitions: bool = True) -> None:
        """``transitions`` False: crossfade on every viseme change (to measure against)."""
        self._clip = clip
        self.fps = fps
        self._patches = {v: p.astype(np.float32) for v, p in clip.patches.items() if ">" not in v}
        self.transitions = sorted(k for k in clip.patches if ">" in k) if transitions else []
        opened = [(o, v) for v, o in clip.pack.openness.items() if v not in ("rest", "MBP")]
        self._ladder = sorted(opened)
        self._blends: dict[int, npt.NDArray[np.uint8]] = {}
        self._mixes: OrderedDict[tuple[int, int], npt.NDArray[np.uint8]] = OrderedDict()
        self._cache: OrderedDict[_Key, MouthCrop | None] = OrderedDict()
        self._tracks: deque[_Track] = deque(maxlen=_TRACKS)
        self._lock = threading.Lock()

    def prepare(self, chunk: SpeechChunk) -> None:
        """Nothing to render ahead: a patch is a lookup."""

    def speak(self, chunk: SpeechChunk, start_frame: int) -> None:
        """Remember the chunk's visemes per frame (the animator's own track), so a frame knows
        the viseme before it."""
        track = track_for_chunk(chunk, self.fps, lang=chunk.sentence.lang or None)
        visemes = tuple(k.viseme for k in track)
        with self._lock:
            self._tracks.append(_Track(start_frame, start_frame + len(visemes), visemes))

    def stop(self, frame: int) -> None:
        """The last chunk ends before ``frame`` (the animator shows ``rest`` from there)."""
        with self._lock:
            if self._tracks and self._tracks[-1].stop > frame:
                t = self._tracks.pop()
                end = max(frame, t.start)
                self._tracks.append(_Track(t.start, end, t.visemes[: end - t.start]))

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._tracks.clear()

    def mouth(self, frame: int, state: AvatarState) -> MouthCrop | None:
        o = state.mouth_open if state.mouth_open == state.mouth_open else 0.0
        q = round(min(max(o, 0.0), 1.0) * _STEPS)
        viseme = state.viseme if state.viseme in self._patches else "?"
        before = self._viseme_at(frame - 1)
        changed = before in self._patches and before not in (viseme, "rest")
        key = (before if changed else None, viseme, q)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        crop = self._make(viseme, q / _STEPS)
        if key[0] is not None and crop is not None and viseme != "rest":
            crop = self._between_visemes(key[0], viseme, crop)
        with self._lock:
            self._cache[key] = crop
            if len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        return crop

    def _viseme_at(self, frame: int) -> str | None:
        with self._lock:
            for t in reversed(self._tracks):
                if t.start <= frame < t.stop:
                    return t.visemes[frame - t.start]
        return None

    def _between_visemes(self, a: str, b: str, crop: MouthCrop) -> MouthCrop:
        """The first frame of ``b`` after ``a``: the recorded transition, else half of each."""
        key = transition_key(a, b)
        if key in self.transitions:
            return MouthCrop(rgb=self._clip.patches[key], weight=crop.weight)
        before = self._make(a, OPENNESS.get(a, 0.0))
        if before is None:
            return crop
        mix_key = (id(before.rgb), id(crop.rgb))  # both arrays live as long as the engine
        with self._lock:
            mixed = self._mixes.get(mix_key)
            if mixed is None:
                half = 0.5 * before.rgb.astype(np.float32) + 0.5 * crop.rgb.astype(np.float32)
                mixed = np.rint(half).astype(np.uint8)
                self._mixes[mix_key] = mixed
                if len(self._mixes) > _MIXES:
                    self._mixes.popitem(last=False)
            else:
                self._mixes.move_to_end(mix_key)
        return MouthCrop(rgb=mixed, weight=crop.weight)

    def _make(self, viseme: str, o: float) -> MouthCrop | None:
        if viseme == "MBP":
            return MouthCrop(rgb=self._clip.patches["MBP"])
        if o <= 0.0:
            return None
        nominal = OPENNESS.get(viseme)
        if nominal is not None and viseme != "rest" and abs(nominal - o) <= SHAPE_TOLERANCE:
            rgb = self._clip.patches[viseme]
        else:
            rgb = self._blend(o)
        return MouthCrop(rgb=rgb, weight=min(1.0, o / FADE_IN))

    def _blend(self, o: float) -> npt.NDArray[np.uint8]:
        """``_between(o)`` as uint8, one array per opening step: a crop's pixels keep their
        identity from frame to frame, so a renderer converts each for its view only once
        (a new array per frame made it convert 124 crops in 300 frames of talk)."""
        q = round(o * _STEPS)
        with self._lock:
            got = self._blends.get(q)
            if got is None:
                got = np.clip(np.rint(self._between(q / _STEPS)), 0, 255).astype(np.uint8)
                self._blends[q] = got
        return got

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
