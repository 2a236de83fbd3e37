"""The idle loop decoded once per machine, in a file every stream of the pack maps read-only.

A 720p loop of 102 frames is 141 MB of yuv420p. Decoded into each stream's own memory, eight
twin streams held 8 x 141 MB and each spent its start decoding the same ``idle.mp4``. Here the
first stream to open a pack decodes it into ``<dir>/<sha256 of idle.mp4>-<w>x<h>-<n>.yuv``
(written under a temporary name, then renamed, so a reader never sees half a file); every
stream then maps that file read-only, and the kernel keeps one copy of its pages for all of
them (page cache). The name carries the hash the pack's manifest checked, so a re-prepared
pack gets a new file and a stale one is never read.

The folder is private to the user (``0700``, owned by them: nobody else can put frames
there); where it cannot be made so, or the disk is full, the loop is decoded into memory as
before. Either way the frames are the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["default_cache_dir", "shared_loop"]

log = logging.getLogger(__name__)
U8 = npt.NDArray[np.uint8]


def default_cache_dir() -> Path:
    """A per-user folder under the temp dir (as the start-up slots use)."""
    return Path(tempfile.gettempdir()) / f"avatarcast-twin-{os.getuid()}"


def _private_dir(path: Path) -> bool:
    """Make ``path`` (0700) if missing; True when it is a folder only this user can write."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def shared_loop(
    key: str,
    shape: tuple[int, int],
    decode: Callable[[], Iterator[U8]],
    *,
    directory: Path | None,
) -> U8 | None:
    """The loop as a read-only (frames, bytes per frame) array mapped from the cache file
    named by ``key``; the file is written from ``decode()`` (one flat yuv420p frame per item)
    when missing. None when ``directory`` is None or unusable (the caller decodes to memory).
    Errors of ``decode`` itself propagate."""
    if directory is None or not _private_dir(directory):
        return None
    n, size = shape
    path = directory / f"{key}.yuv"
    with contextlib.suppress(OSError):
        if path.stat().st_size == n * size:
            return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            count = 0
            for frame in decode():
                f.write(frame.tobytes())
                count += 1
        if count != n:
            os.unlink(tmp)
            return None  # the caller's own decode reports the mismatch
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        log.warning("twin loop cache %s not written (%s): the loop stays in memory", path, e)
        return None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
