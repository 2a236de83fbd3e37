"""The one model client: its retry, backoff and breaker policy on the in-memory double, and the
real ``openai``-backed client against the local OpenAI-compatible server."""

# ruff: noqa: F811  (the fixture is imported until conftest.py wires in conftest_llm)

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from avatarcast.models import (
    CircuitBreaker,
    CircuitOpenError,
    MemoryModelClient,
    ModelEndpoint,
    ModelError,
    OpenAiModelClient,
    RetryPolicy,
    Scripted,
)
from avatarcast.models.client import ChatTurn
from avatarcast.script.llm import SentenceSplitter
from conftest_llm import llm_server  # noqa: F401
from llm_server import BadJson, Reply, ScriptedLlmServer, Speech, Status

ASK: list[ChatTurn] = [{"role": "user", "content": "Say something."}]
KEY = "sk-test-DO-NOT-LEAK-0123456789"


async def sentences(client: MemoryModelClient | OpenAiModelClient, **kw: object) -> list[str]:
    out: list[str] = []
    stream = client.stream_chat(
        ASK,
        model="m",
        temperature=0.0,
        max_tokens=50,
        first_token_timeout=1.0,
        idle_timeout=1.0,
        chunker=SentenceSplitter,
        **kw,  # type: ignore[arg-type]
    )
    async for s in stream:
        out.append(s)
    return out


def down(retryable: bool = True) -> Scripted:
    return Scripted(error=ModelError("HTTP 503", retryable=retryable))


async def test_a_retryable_failure_is_retried_with_backoff_then_succeeds() -> None:
    client = MemoryModelClient(down(), down(), "It works. Twice.", policy=RetryPolicy(backoff=0.05))
    start = time.monotonic()
    assert await sentences(client) == ["It works.", "Twice."]
    assert time.monotonic() - start >= 0.05 + 0.1  # backoff doubles
    assert len(client.requests) == 3 and len(client.failures) == 2


async def test_a_failure_that_a_retry_cannot_help_is_raised_at_once() -> None:
    client = MemoryModelClient(down(retryable=False), "never asked")
    with pytest.raises(ModelError, match="503") as caught:
        await client.chat(ASK, model="m", temperature=0.0, max_tokens=10)
    assert not caught.value.retryable and len(client.requests) == 1


async def test_retries_are_spent_then_the_last_error_is_raised() -> None:
    client = MemoryModelClient(default=down(), policy=RetryPolicy(retries=2, backoff=0.0))
    with pytest.raises(ModelError):
        await client.speech("hello", model="tts", voice="alloy", response_format="pcm")
    assert len(client.requests) == 3
    assert list(client.failures) == [f"attempt {i}: HTTP 503" for i in (1, 2, 3)]


async def test_a_stream_is_retried_until_its_first_sentence_but_never_after() -> None:
    half = Scripted(text="It has a jar", error=ModelError("cut"), partial=2)
    client = MemoryModelClient(half, "It has a jar. It is red.")
    assert await sentences(client) == ["It has a jar.", "It is red."]
    assert len(client.requests) == 2  # the first sentence was never complete: retried

    said = Scripted(text="It has a jar. It is red.", error=ModelError("cut"), partial=5)
    client = MemoryModelClient(said, "never asked")
    out: list[str] = []
    with pytest.raises(ModelError, match="cut"):
        async for s in client.stream_chat(
            ASK,
            model="m",
            temperature=0.0,
            max_tokens=50,
            first_token_timeout=1.0,
            idle_timeout=1.0,
            chunker=SentenceSplitter,
        ):
            out.append(s)
    assert out == ["It has a jar."] and len(client.requests) == 1


async def test_an_empty_reply_is_a_retryable_failure() -> None:
    client = MemoryModelClient("", "Now it speaks.")
    assert await sentences(client) == ["Now it speaks."]
    assert client.failures[0].endswith("the model sent an empty reply")


async def test_the_breaker_opens_fails_fast_and_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown=30.0, monotonic=lambda: now[0])
    client = MemoryModelClient(
        default=down(), policy=RetryPolicy(retries=0, backoff=0.0), breaker=breaker
    )
    for _ in range(2):
        with pytest.raises(ModelError):
            await client.chat(ASK, model="m", temperature=0.0, max_tokens=10)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await client.chat(ASK, model="m", temperature=0.0, max_tokens=10)
    assert len(client.requests) == 2  # the open breaker sent nothing
    now[0] = 31.0
    client.default = Scripted(text="Back.")
    assert await client.chat(ASK, model="m", temperature=0.0, max_tokens=10) == "Back."
    assert breaker.state == "closed"


async def test_the_real_client_streams_retries_and_redacts(llm_server: ScriptedLlmServer) -> None:
    endpoint = ModelEndpoint(base_url=llm_server.base_url, api_key=KEY, timeout=3.0)
    client = OpenAiModelClient(endpoint, policy=RetryPolicy(retries=2, backoff=0.01))
    try:
        llm_server.script(Status(503), BadJson("It has"), Reply("It crushes ice. It is red."))
        assert await sentences(client) == ["It crushes ice.", "It is red."]
        assert len(llm_server.requests) == 3
        assert "HTTP 503" in client.failures[0] and "malformed" in client.failures[1]

        llm_server.script(Status(401))
        with pytest.raises(ModelError, match="HTTP 401") as caught:
            await client.chat(ASK, model="m", temperature=0.0, max_tokens=10)
        assert not caught.value.retryable and KEY not in str(caught.value)

        llm_server.script(Reply("  A whole reply.  "))
        assert await client.chat(ASK, model="m", temperature=0.0, max_tokens=10) == (
            "A whole reply."
        )
        assert llm_server.requests[-1]["stream"] is False

        llm_server.script_speech(Speech(seconds=0.5))
        audio = await client.speech("hi", model="tts", voice="alloy", response_format="pcm")
        assert len(audio) == 2 * 12_000  # 0.5 s of 24 kHz s16le
    finally:
        await client.aclose()


async def test_a_trial_cut_short_never_wedges_the_breaker() -> None:
    """A half-open trial whose caller gives up (a timeout, or a stream closed after its first
    sentence) must leave the breaker able to try again."""
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown=30.0, monotonic=lambda: now[0])
    client = MemoryModelClient(
        down(), Scripted(text="Slow.", delay=5.0), policy=RetryPolicy(retries=0), breaker=breaker
    )
    with pytest.raises(ModelError):
        await client.chat(ASK, model="m", temperature=0.0, max_tokens=10)
    now[0] = 31.0  # half open: the next call is the trial
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.chat(ASK, model="m", temperature=0.0, max_tokens=10)
    client.default = Scripted(text="First. Second.")
    stream = client.stream_chat(
        ASK,
        model="m",
        temperature=0.0,
        max_tokens=50,
        first_token_timeout=1.0,
        idle_timeout=1.0,
        chunker=SentenceSplitter,
    )
    async with aclosing(stream):
        assert await anext(stream) == "First."  # the caller stops here
    assert breaker.state == "closed"
