"""The retry, backoff and circuit-breaker policy for calls to remote, fallible services.

A retry helps only when the error says so (``AvatarcastError.retryable``): a timeout, a refused
connection, HTTP 408/409/429/5xx. Each retry waits ``backoff * 2**attempt`` seconds. After
``failures`` failed calls in a row the breaker opens and calls fail at once, so a dead endpoint
costs one timeout per cooldown rather than one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from avatarcast.errors import AvatarcastError

__all__ = ["CircuitBreaker", "RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a retryable failure is tried again."""

    retries: int = 2
    backoff: float = 0.2

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0:
            raise ValueError(f"retries {self.retries} and backoff {self.backoff} must be >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based) before the next."""
        return self.backoff * 2.0**attempt

    def again(self, attempt: int, error: AvatarcastError) -> bool:
        """Whether attempt ``attempt`` (0-based) that failed with ``error`` is tried again."""
        return error.retryable and attempt < self.retries

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        on_failure: Callable[[int, AvatarcastError], None] | None = None,
    ) -> T:
        """``fn()`` tried until it succeeds, fails for good, or the retries are spent."""
        attempt = 0
        while True:
            try:
                return await fn()
            except AvatarcastError as exc:
                if on_failure is not None:
                    on_failure(attempt, exc)
                if not self.again(attempt, exc):
                    raise
            await asyncio.sleep(self.delay(attempt))
            attempt += 1


class CircuitBreaker:
    """Opens after ``failures`` failures in a row; lets one trial through after ``cooldown`` s."""

    def __init__(
        self,
        *,
        failures: int = 3,
        cooldown: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._monotonic = monotonic
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        if self._monotonic() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def record_success(self) -> None:
        self._count = 0
        self._opened_at = None
        self._trial = False

    def abandon(self) -> None:
        """A call ended with no verdict (cancelled): the next call may be the trial."""
        self._trial = False

    def record_failure(self) -> None:
        self._count += 1
        if self._trial or self._count >= self.failures:
            self._opened_at = self._monotonic()
        self._trial = False
