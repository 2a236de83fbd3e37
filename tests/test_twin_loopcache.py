"""The twin's idle loop decoded once per machine into a file every stream maps read-only
(``avatar.twin.loopcache``): measured on the files and the bytes mapped back."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatarcast.avatar.twin.loopcache import shared_loop

N, SIZE = 5, 24  # five "frames" of 24 bytes (a 4x4 yuv420p frame)


class Decoder:
    """A loop's frames, counting how often it is decoded."""

    def __init__(self, frames: int = N, fail_at: int | None = None) -> None:
        self.calls = 0
        self.frames = frames
        self.fail_at = fail_at

    def __call__(self) -> Iterator[np.ndarray]:
        self.calls += 1
        for i in range(self.frames):
            if i == self.fail_at:
                raise RuntimeError("corrupt frame 2")
            yield np.arange(SIZE, dtype=np.uint8) + np.uint8(10 * i)


def _expected() -> np.ndarray:
    return np.stack([np.arange(SIZE, dtype=np.uint8) + np.uint8(10 * i) for i in range(N)])


def test_first_stream_decodes_every_later_one_maps_the_same_bytes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dec = Decoder()
    a = shared_loop("k1", (N, SIZE), dec, directory=cache)
    b = shared_loop("k1", (N, SIZE), dec, directory=cache)
    assert a is not None and b is not None
    assert dec.calls == 1  # the second stream read the file, not the video
    assert np.array_equal(np.asarray(a), _expected()) and np.array_equal(np.asarray(b), a)
    assert [p.name for p in cache.iterdir()] == ["k1.yuv"]  # no temporary file left
    assert (cache / "k1.yuv").stat().st_size == N * SIZE
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    with pytest.raises(ValueError, match="read-only"):
        b[0, 0] = 1  # a stream can never draw into the shared loop


def test_a_file_of_the_wrong_size_is_decoded_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "k2.yuv").write_bytes(b"\0" * (N * SIZE - 7))  # cut short (a full disk, a crash)
    dec = Decoder()
    got = shared_loop("k2", (N, SIZE), dec, directory=cache)
    assert got is not None and dec.calls == 1
    assert np.array_equal(np.asarray(got), _expected())


def test_a_folder_others_can_write_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    dec = Decoder()
    assert shared_loop("k3", (N, SIZE), dec, directory=cache) is None
    assert dec.calls == 0 and not any(cache.iterdir())
    assert shared_loop("k3", (N, SIZE), dec, directory=None) is None


def test_a_short_or_broken_decode_leaves_no_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert shared_loop("k4", (N, SIZE), Decoder(frames=N - 1), directory=cache) is None
    assert not any(cache.iterdir())  # the caller decodes and reports the mismatch itself
    with pytest.raises(RuntimeError, match="corrupt frame 2"):
        shared_loop("k4", (N, SIZE), Decoder(fail_at=2), directory=cache)
    assert not any(cache.iterdir())
