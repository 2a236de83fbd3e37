"""One client for every OpenAI-compatible model call (chat completions and speech).

``policy`` holds the one retry, backoff and circuit-breaker policy; ``client`` the protocol and
the real ``openai``-backed client; ``memory`` an in-memory double for tests that need no server.
"""

from avatarcast.models.client import (
    ChatTurn,
    Chunker,
    CircuitOpenError,
    ModelClient,
    ModelEndpoint,
    ModelError,
    OpenAiModelClient,
)
from avatarcast.models.memory import MemoryModelClient, Scripted
from avatarcast.models.policy import CircuitBreaker, RetryPolicy

__all__ = [
    "ChatTurn",
    "Chunker",
    "CircuitBreaker",
    "CircuitOpenError",
    "MemoryModelClient",
    "ModelClient",
    "ModelEndpoint",
    "ModelError",
    "OpenAiModelClient",
    "RetryPolicy",
    "Scripted",
]
