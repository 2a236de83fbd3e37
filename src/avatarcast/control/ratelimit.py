"""Token buckets in memory: per API key for one API process, and for anything per process
(viewer playback, chat per stream)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter(Protocol):
    """A token bucket per key: :class:`TokenBuckets` in this process, or
    :class:`~avatarcast.control.ratelimit_shared.SharedTokenBuckets` across replicas."""

    rate: float
    #: ``take`` does I/O: call it from a worker thread, not the event loop.
    blocking: bool

    def take(self, key: str) -> float: ...

    def forget(self, key: str) -> None: ...


class TokenBuckets:
    """``rate`` tokens per second up to ``burst``; each request takes one. Thread-safe."""

    blocking = False

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if the request may go ahead, else the seconds until a token is available."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)

    def forget_full(self) -> None:
        """Drop the buckets that have refilled: a new one starts full, so nothing changes."""
        now = self._clock()
        with self._lock:
            full = [
                key
                for key, b in self._buckets.items()
                if b.tokens + (now - b.stamp) * self.rate >= self.burst
            ]
            for key in full:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
