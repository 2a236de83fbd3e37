"""The first pass over a recording: the face, its landmarks and a thumbnail in every frame.

On a machine with two or more cores a long recording is split in two at a whole-frame search
frame (see :class:`~avatarcast.twinprep.faces.FaceFinder`): this process takes the first part,
a second process the rest, and the parts are joined. The search at the split frame depends on
no earlier frame, so the result is the same, bit for bit, as one pass over all the frames; when
the second part's first frame shows no face (the one pass would carry the box before it over),
this process goes on through that part itself. The second process decodes the frames before
its part without converting them, which keeps the frame order exactly the reader's.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import numpy.typing as npt

from avatarcast.errors import ConfigError
from avatarcast.twinprep import loop as loops
from avatarcast.twinprep import media
from avatarcast.twinprep.faces import FULL_EVERY, FaceFinder, FaceTrack, Unresolved

__all__ = ["MIN_SPLIT", "FirstPass", "first_pass"]

F32 = npt.NDArray[np.float32]
MIN_SPLIT = 500
"""Recordings shorter than this many frames (20 s at 25 fps) stay in one process: starting the
second one (about a second) would cost more than it saves."""
SHARE = 0.52
"""The first part's share of the frames: the second process also decodes the frames before its
part, so the first takes slightly more of them."""


@dataclass(frozen=True, slots=True)
class FirstPass:
    track: FaceTrack
    thumbs: list[F32]
    frames: int
    processes: int = 1
    """How many processes found faces (2 when the second part was found apart)."""


@dataclass(frozen=True, slots=True)
class _Part:
    boxes: list[tuple[int, int, int, int]]
    marks: list[F32]
    thumbs: list[F32]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def first_pass(
    video: Path, *, source: str, frames_hint: int, split_at: int | None = None
) -> FirstPass:
    """Every frame of ``video`` (``source`` names it in errors). ``frames_hint`` is the frame
    count the container reports; ``split_at`` forces the split frame (tests), 0 forces one
    process."""
    if split_at is not None and split_at % FULL_EVERY:
        raise ValueError(f"split_at={split_at}: a pass splits only at a multiple of {FULL_EVERY}")
    if split_at is None:
        split_at = 0
        if _cores() >= 2 and frames_hint >= MIN_SPLIT:
            split_at = FULL_EVERY * round(SHARE * frames_hint / FULL_EVERY)
    if split_at <= 0:
        finder = FaceFinder(source)
        thumbs = _run(finder, video, 0, None)
        return FirstPass(finder.track(), thumbs, len(thumbs))
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_second_part,
        args=(send, str(video), source, split_at),
        name="twin-faces",
        daemon=True,
    )
    child.start()
    send.close()
    asked = False
    rest: _Part | None = None
    try:
        finder = FaceFinder(source)
        thumbs = _run(finder, video, 0, split_at)
        if len(thumbs) == split_at:  # else the recording ended before the second part
            asked = True
            rest = _receive(receive)
    finally:
        if not asked:
            child.terminate()
        child.join()
        receive.close()
    if asked and rest is None:  # the second part could not start alone: go on through it
        thumbs += _run(finder, video, split_at, None)
    mine = finder.track()
    if rest is None or not rest.boxes:
        return FirstPass(mine, thumbs, len(thumbs))
    track = FaceTrack(
        boxes=np.concatenate([mine.boxes, np.array(rest.boxes, np.int32)]),
        landmarks=np.concatenate([mine.landmarks, np.stack(rest.marks).astype(np.float32)]),
    )
    return FirstPass(track, thumbs + rest.thumbs, len(thumbs) + len(rest.thumbs), processes=2)


def _run(finder: FaceFinder, video: Path, start: int, stop: int | None) -> list[F32]:
    thumbs: list[F32] = []
    for i, rgb in enumerate(media.frames(video, start=start, stop=stop), start):
        finder.add(i, rgb)
        thumbs.append(loops.thumbnail(rgb))
    return thumbs


def _receive(receive: Connection) -> _Part | None:
    try:
        kind, payload = receive.recv()
    except EOFError as e:  # the process died without a word (killed, out of memory)
        raise ConfigError("the second face-finding process ended without a result") from e
    if kind == "error":
        message, field = payload
        raise ConfigError(message, field=field)
    if kind == "unresolved":
        return None
    assert isinstance(payload, _Part)
    return payload


def _second_part(send: Connection, video: str, source: str, start: int) -> None:
    """In the second process: frames ``start`` to the end, sent back as one message."""
    try:
        finder = FaceFinder(source, start=start)
        thumbs = _run(finder, Path(video), start, None)
        boxes, marks = finder.found()
        send.send(("part", _Part(boxes=boxes, marks=marks, thumbs=thumbs)))
    except Unresolved:
        send.send(("unresolved", None))
    except ConfigError as e:
        send.send(("error", (str(e), e.field)))
    finally:
        send.close()
