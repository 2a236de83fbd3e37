"""An in-memory :class:`~avatarcast.models.client.ModelClient` for tests that need no server.

It runs the same retry and breaker policy as the real client around scripted attempts: each
call takes the next scripted behaviour (a reply streamed in words, audio bytes, or an error),
and every request is kept for the test to read.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from avatarcast.models.client import ChatTurn, ModelError, ResilientClient, SpeechFormat
from avatarcast.models.policy import CircuitBreaker, RetryPolicy

__all__ = ["MemoryModelClient", "Scripted"]


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted attempt: ``text`` (streamed a word at a time) or ``audio``, after ``delay``
    seconds; or ``error``, raised after the first ``partial`` words of ``text``."""

    text: str = ""
    audio: bytes = b""
    error: ModelError | None = None
    partial: int = 0
    delay: float = 0.0


class MemoryModelClient(ResilientClient):
    """Answers from a queue of :class:`Scripted` attempts; ``default`` once it is empty."""

    where = "memory"

    def __init__(
        self,
        *script: Scripted | str,
        default: Scripted | str = "",
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(policy=policy or RetryPolicy(backoff=0.0), breaker=breaker)
        self.queue: deque[Scripted] = deque(_scripted(s) for s in script)
        self.default = _scripted(default)
        self.requests: list[dict[str, Any]] = []
        self.closed = False

    def script(self, *script: Scripted | str) -> None:
        self.queue.extend(_scripted(s) for s in script)

    def _next(self, request: dict[str, Any]) -> Scripted:
        self.requests.append(request)
        return self.queue.popleft() if self.queue else self.default

    async def _open_stream(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        first_token_timeout: float,
        idle_timeout: float,
    ) -> AsyncGenerator[str, None]:
        step = self._next({"model": model, "messages": list(messages), "stream": True})
        if step.delay > first_token_timeout:
            await asyncio.sleep(first_token_timeout)
            raise ModelError(f"{self.where}: the model did not answer in time")
        await asyncio.sleep(step.delay)
        words = re.findall(r"\s*\S+", step.text)
        for i, word in enumerate(words):
            if step.error is not None and i >= step.partial:
                break
            yield word
        if step.error is not None:
            raise step.error

    async def _chat_once(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
    ) -> str:
        step = self._next({"model": model, "messages": list(messages), "stream": False})
        await asyncio.sleep(step.delay)
        if step.error is not None:
            raise step.error
        return step.text.strip()

    async def _speech_once(
        self, text: str, *, model: str, voice: str, response_format: SpeechFormat
    ) -> bytes:
        step = self._next(
            {"model": model, "voice": voice, "input": text, "response_format": response_format}
        )
        await asyncio.sleep(step.delay)
        if step.error is not None:
            raise step.error
        return step.audio

    async def aclose(self) -> None:
        self.closed = True


def _scripted(step: Scripted | str) -> Scripted:
    return Scripted(text=step) if isinstance(step, str) else step
