"""A network voice with an offline voice behind it, so the stream never goes quiet.

When the primary fails (network down, timeout, an API error), the sentence is spoken by the
fallback instead, and the failure is counted. After a few failures in a row the primary is not
tried at all for a cooldown (the circuit breaker of ``avatarcast.models``), so a dead endpoint
costs one timeout per cooldown rather than one per sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from avatarcast.errors import VoiceError
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.logs import redact
from avatarcast.models import CircuitBreaker
from avatarcast.voice.base import Voice, VoiceInfo

__all__ = ["FallbackVoice", "VoiceFailure"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceFailure:
    """One failed attempt of the primary voice (the message never holds a key)."""

    at: float  # monotonic seconds
    error: str
    retryable: bool


class FallbackVoice:
    """Speaks with ``primary``; with ``fallback`` when the primary fails or takes too long.

    ``timeout`` bounds a whole primary attempt (connect, synthesis, download, decode). Chunks
    say which voice actually spoke them in ``SpeechChunk.voice``.
    """

    def __init__(
        self,
        primary: Voice,
        fallback: Voice,
        *,
        timeout: float = 15.0,
        failures_to_open: int = 3,
        cooldown: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise VoiceError(f"fallback timeout {timeout} s is not positive")
        self.primary = primary
        self.fallback = fallback
        self.info: VoiceInfo = primary.info
        self.breaker = CircuitBreaker(
            failures=failures_to_open, cooldown=cooldown, monotonic=monotonic
        )
        self.failures = 0
        self.fallbacks = 0
        self.last_failure: VoiceFailure | None = None
        self._timeout = timeout
        self._monotonic = monotonic

    @property
    def last_error(self) -> str | None:
        return self.last_failure.error if self.last_failure is not None else None

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        if self.breaker.allow():
            try:
                async with asyncio.timeout(self._timeout):
                    chunk = await self.primary.synthesize(sentence)
            except TimeoutError:
                self._record(f"no answer within {self._timeout:g} s", retryable=True)
            except VoiceError as exc:
                self._record(str(exc), retryable=exc.retryable)
            except OSError as exc:
                self._record(f"{type(exc).__name__}: {exc}", retryable=True)
            else:
                self.breaker.record_success()
                return chunk
        self.fallbacks += 1
        return await self.fallback.synthesize(sentence)

    def _record(self, error: str, *, retryable: bool) -> None:
        error = redact(error)
        self.failures += 1
        self.last_failure = VoiceFailure(at=self._monotonic(), error=error, retryable=retryable)
        self.breaker.record_failure()
        log.warning(
            "voice %s failed (%d so far, breaker %s); speaking with %s: %s",
            self.info.name,
            self.failures,
            self.breaker.state,
            self.fallback.info.name,
            error,
        )

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()
