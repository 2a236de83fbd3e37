"""One face and its 68 landmarks per frame, from models that registry packages ship.

The detector is dlib's HOG frontal-face detector (built into the ``dlib-bin`` wheel, pinned
in pyproject.toml); the landmarks come from Debian's ``libdlib-data`` shape predictor
(``/usr/share/dlib/shape_predictor_68_face_landmarks.dat``, pinned in scripts/setup.sh; its
sha256 goes into each pack's manifest). Detection runs on a copy about 640 pixels wide (a few
milliseconds a frame), landmarks on the full frame. A frame with two clear faces, or a run of
frames with none, is an error naming the file and the frame: a twin cut from the wrong face,
or from a face that comes and goes, would be worse than none.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.errors import ConfigError

__all__ = ["FULL_EVERY", "LANDMARKS_PATH", "FaceFinder", "FaceTrack", "Unresolved", "model_info"]

LANDMARKS_PATH = Path("/usr/share/dlib/shape_predictor_68_face_landmarks.dat")
DETECT_WIDTH = 640
FULL_EVERY = 25  # frames between searches of the whole frame
ROI_FACE = 100  # a tracked face is searched for at about this width in pixels
MAX_GAP = 5
"""A face may go unseen this many frames in a row (a fast turn, a blink of the detector)."""
SECOND_FACE = 0.35
"""A second face counts as clear when its box is this large against the main one's."""

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


class Unresolved(Exception):
    """A finder that took over mid-recording found no face in its first frame: what it would
    carry over (the last box before) is the previous finder's, so that one must go on."""


@dataclass(frozen=True, slots=True)
class FaceTrack:
    """Per frame: the face box (x, y, w, h) and 68 landmarks (x, y), in frame pixels."""

    boxes: npt.NDArray[np.int32]  # (n, 4)
    landmarks: F32  # (n, 68, 2)


def _dlib() -> Any:
    try:
        import dlib  # type: ignore[import-untyped]
    except ImportError as e:  # pragma: no cover - the dependency is in pyproject
        raise ConfigError(
            "preparing a twin needs dlib (pip install dlib-bin) and Debian's libdlib-data"
        ) from e
    return dlib


@functools.cache
def _models(landmarks: Path) -> tuple[Any, Any]:
    """The detector and the landmark predictor, loaded once a process: loading the 95 MB
    predictor costs 0.8 CPU s, which every finder paid again (a split pass, a photo after a
    video, tests that prepare a few times). Both are only read when called, so finders share
    them; the process keeps ~100 MB for its life, which is a ``prepare`` command's life (the
    CLI) or a test run's. dlib's detector is not safe for concurrent calls: twinprep runs in
    one thread (a split pass uses processes), and a threaded caller would need a lock."""
    dlib = _dlib()
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(landmarks))


def model_info() -> dict[str, str]:
    """What goes into the manifest's ``models``: names, versions, the predictor's sha256."""
    dlib = _dlib()
    return {
        "face_detector": f"dlib {dlib.__version__} HOG frontal face detector (dlib-bin)",
        "landmarks": f"{LANDMARKS_PATH} (Debian libdlib-data)",
        "landmarks_sha256": _sha256(LANDMARKS_PATH, LANDMARKS_PATH.stat().st_mtime_ns),
    }


@functools.cache
def _sha256(path: Path, mtime_ns: int) -> str:
    """Hashed once a process per version of the file (0.3-0.9 CPU s for the 95 MB model,
    paid for every pack before); ``mtime_ns`` keys it, so a replaced file is hashed again."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class FaceFinder:
    """Finds the one face in each frame of a source (``source`` names it in errors).

    ``start`` > 0 makes it take over from a finder that saw the frames before: it must be a
    whole-frame search frame (a multiple of ``FULL_EVERY``), where the search depends on no
    earlier frame, so it finds what one finder over all the frames would; a miss there raises
    :class:`Unresolved`."""

    def __init__(self, source: str, *, start: int = 0) -> None:
        if start % FULL_EVERY:
            raise ValueError(f"a finder can take over only at a multiple of {FULL_EVERY}")
        dlib = _dlib()
        if not LANDMARKS_PATH.is_file():
            raise ConfigError(
                f"the landmark model {LANDMARKS_PATH} is missing: install Debian's "
                "libdlib-data (scripts/setup.sh does)"
            )
        self._dlib = dlib
        self._detect, self._shape = _models(LANDMARKS_PATH)
        self.source = source
        self._boxes: list[tuple[int, int, int, int]] = []
        self._marks: list[F32] = []
        self._last: tuple[int, int, int, int] | None = None
        self._gap = 0
        self._start = start

    def add(self, index: int, rgb: U8) -> None:
        """Find the face in frame ``index`` (frames must come in order)."""
        box = self._find(index, rgb)
        if box is None:
            if self._last is None and self._start > 0:
                raise Unresolved(index)
            self._gap += 1
            if self._last is None or self._gap > MAX_GAP:
                first = index - self._gap + 1
                raise ConfigError(
                    f"{self.source}: no clear face in frame {first}"
                    + (f" and the {self._gap - 1} after it" if self._gap > 1 else "")
                    + " (the host's face must be in view, frontal and lit, in every frame)",
                    field="video",
                )
            box = self._last
        else:
            self._gap = 0
        self._last = box
        x, y, w, h = box
        rect = self._dlib.rectangle(x, y, x + w, y + h)
        shape = self._shape(rgb, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        self._boxes.append(box)
        self._marks.append(pts)

    def _find(self, index: int, rgb: U8) -> tuple[int, int, int, int] | None:
        """The whole frame is searched at the first frame and once a second (to catch a second
        face); in between only around the last box, scaled so the face is about 100 px."""
        if self._last is None or index % FULL_EVERY == 0:
            return self._search(index, rgb, (0, 0, rgb.shape[1], rgb.shape[0]), DETECT_WIDTH)
        x, y, w, h = self._last
        roi = (x - w // 2, y - h // 2, 2 * w, 2 * h)
        return self._search(index, rgb, roi, 2 * ROI_FACE)

    def _search(
        self, index: int, rgb: U8, roi: tuple[int, int, int, int], width: int
    ) -> tuple[int, int, int, int] | None:
        hh, ww = rgb.shape[:2]
        x0, y0 = max(0, roi[0]), max(0, roi[1])
        x1, y1 = min(ww, roi[0] + roi[2]), min(hh, roi[1] + roi[3])
        # dlib misreads a strided view (on a test video 935 of 960 searches of a view found
        # other faces than on its copy, and a split pass differed from one pass): a copy
        part = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        s = min(1.0, width / max(1, x1 - x0))
        if s < 1.0:
            size = (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s)))
            part = np.asarray(Image.fromarray(part).resize(size, Image.Resampling.BILINEAR))
        found = list(self._detect(part, 0))
        if not found and self._last is None and self._start == 0:
            found = list(self._detect(part, 1))  # a small face: look once more, upsampled
        if not found:
            return None
        found.sort(key=lambda r: r.area(), reverse=True)
        if len(found) > 1 and found[1].area() >= SECOND_FACE * found[0].area():
            raise ConfigError(
                f"{self.source}: frame {index} shows {len(found)} faces; a twin is made from "
                "a recording of one person alone in view",
                field="video",
            )
        r = found[0]
        return (
            x0 + round(r.left() / s),
            y0 + round(r.top() / s),
            round(r.width() / s),
            round(r.height() / s),
        )

    def found(self) -> tuple[list[tuple[int, int, int, int]], list[F32]]:
        """The boxes and landmarks so far, one per frame added."""
        return list(self._boxes), list(self._marks)

    def track(self) -> FaceTrack:
        if not self._boxes:
            raise ConfigError(f"{self.source}: has no frames", field="video")
        return FaceTrack(
            boxes=np.array(self._boxes, np.int32),
            landmarks=np.stack(self._marks).astype(np.float32),
        )
