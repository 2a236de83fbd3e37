"""Tells people when the model writer falls back to the template writer, and when it is back.

The LLM writer's circuit breaker opens after failures in a row (an endpoint answering 500s, a
timeout): the stream goes on with the template writer's sentences, so nothing on air shows it,
and before this nothing reported it either (the soak's LLM chaos was seen by no event). The
watch reads the breaker at each status tick and reports ``writer_fallback`` when it leaves
``closed`` and ``writer_recovered`` when a trial call closes it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from avatarcast.models.policy import CircuitBreaker

__all__ = ["WriterWatch"]


class WriterWatch:
    def __init__(
        self,
        breaker: CircuitBreaker,
        failures: Sequence[str],
        emit: Callable[[str, Mapping[str, Any]], None],
    ) -> None:
        self._breaker, self._failures, self._emit = breaker, failures, emit
        self._down = False

    def check(self) -> None:
        down = self._breaker.state != "closed"
        if down and not self._down:
            last = self._failures[-1] if self._failures else ""
            self._emit("writer_fallback", {"writer": "llm", "to": "template", "error": last})
        elif self._down and not down:
            self._emit("writer_recovered", {"writer": "llm"})
        self._down = down
