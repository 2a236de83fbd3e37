"""The LLM writer's fallback to the template writer, and its recovery, are reported once each
(issue 15's soak: an LLM endpoint answering 500s raised no event at all)."""

from __future__ import annotations

from collections import deque
from typing import Any

from avatarcast.models.policy import CircuitBreaker
from avatarcast.pipeline.writer_watch import WriterWatch


def test_fallback_and_recovery_are_reported_once_each() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown=30.0, monotonic=lambda: now[0])
    failures: deque[str] = deque(maxlen=10)
    seen: list[tuple[str, dict[str, Any]]] = []
    watch = WriterWatch(breaker, failures, lambda kind, detail: seen.append((kind, dict(detail))))
    watch.check()
    for n in range(3):
        failures.append(f"127.0.0.1:9: HTTP 500 ({n})")
        breaker.record_failure()
        watch.check()
    assert seen == [
        (
            "writer_fallback",
            {"writer": "llm", "to": "template", "error": "127.0.0.1:9: HTTP 500 (2)"},
        )
    ]
    now[0] = 31.0  # half open: still not the model's sentences on air
    watch.check()
    assert breaker.allow()  # the trial call
    breaker.record_success()
    watch.check()
    watch.check()
    assert [k for k, _ in seen] == ["writer_fallback", "writer_recovered"]
