"""The model client: chat completions (streamed or whole) and speech, behind one protocol.

Every OpenAI-compatible call in avatarcast (the script writer, viewer answers, the OpenAI voice)
goes through a :class:`ModelClient`, so timeouts, retries, the circuit breaker and the
translation of SDK errors into :class:`ModelError` (which says whether a retry helps) are written
once. :class:`OpenAiModelClient` drives the real ``openai`` SDK, imported on first use; the
SDK's own retries are off, :class:`~avatarcast.models.policy.RetryPolicy` decides instead.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict, TypeVar, cast
from urllib.parse import urlsplit

from avatarcast.errors import AvatarcastError
from avatarcast.logs import redact
from avatarcast.models.policy import CircuitBreaker, RetryPolicy

if TYPE_CHECKING:  # the SDK is imported when a model is first used, not at start-up
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

__all__ = [
    "ChatTurn",
    "Chunker",
    "CircuitOpenError",
    "ModelClient",
    "ModelEndpoint",
    "ModelError",
    "OpenAiModelClient",
    "ResilientClient",
    "SpeechFormat",
]

SpeechFormat = Literal["pcm", "wav"]
T = TypeVar("T")


class ModelError(AvatarcastError):
    """A model endpoint failed or replied with something unusable. Retryable unless it says not."""

    retryable = True


class CircuitOpenError(ModelError):
    """The breaker is open: the endpoint failed repeatedly and is not tried until the cooldown."""


class ChatTurn(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class Chunker(Protocol):
    """Cuts streamed text into units (sentences): a stream is retried until the first unit."""

    def feed(self, delta: str) -> list[str]: ...

    def flush(self) -> list[str]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEndpoint:
    """Where a model is served. An empty ``base_url`` means OpenAI's own endpoint."""

    base_url: str = ""
    api_key: str = field(default="", repr=False)  # never in a log line or a traceback
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ModelError(f"model timeout {self.timeout} s is not positive", retryable=False)


class ModelClient(Protocol):
    """What callers use. ``failures`` keeps each failed attempt's message (never a key)."""

    where: str
    breaker: CircuitBreaker | None
    failures: deque[str]

    def stream_chat(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        first_token_timeout: float,
        idle_timeout: float,
        chunker: Callable[[], Chunker] | None = None,
        retries: int | None = None,
    ) -> AsyncGenerator[str, None]: ...

    async def chat(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
    ) -> str: ...

    async def speech(
        self, text: str, *, model: str, voice: str, response_format: SpeechFormat
    ) -> bytes: ...

    async def aclose(self) -> None: ...


class _Whole:
    """The chunker that passes every delta through as it comes."""

    def feed(self, delta: str) -> list[str]:
        return [delta] if delta else []

    def flush(self) -> list[str]:
        return []


class ResilientClient(ABC):
    """The policy around single attempts: breaker, retries with backoff, a failure log.

    Subclasses implement one attempt of each call (``_open_stream``, ``_chat_once``,
    ``_speech_once``) and raise :class:`ModelError` only.
    """

    where = "model"

    def __init__(
        self, *, policy: RetryPolicy | None = None, breaker: CircuitBreaker | None = None
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.breaker = breaker
        self.failures: deque[str] = deque(maxlen=1000)

    # --- one attempt each ------------------------------------------------------------------

    @abstractmethod
    def _open_stream(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        first_token_timeout: float,
        idle_timeout: float,
    ) -> AsyncGenerator[str, None]: ...

    @abstractmethod
    async def _chat_once(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
    ) -> str: ...

    @abstractmethod
    async def _speech_once(
        self, text: str, *, model: str, voice: str, response_format: SpeechFormat
    ) -> bytes: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    # --- the policy ------------------------------------------------------------------------

    def _admit(self) -> None:
        if self.breaker is not None and not self.breaker.allow():
            raise CircuitOpenError(f"{self.where}: failed repeatedly; not tried until cooldown")

    def _settle(self, ok: bool | None) -> None:
        """Tell the breaker how a call ended; None: no verdict (the caller gave up on it)."""
        if self.breaker is None:
            return
        if ok is None:
            self.breaker.abandon()
        else:
            (self.breaker.record_success if ok else self.breaker.record_failure)()

    def _failed(self, attempt: int, error: AvatarcastError) -> None:
        self.failures.append(f"attempt {attempt + 1}: {error}")

    async def stream_chat(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        first_token_timeout: float,
        idle_timeout: float,
        chunker: Callable[[], Chunker] | None = None,
        retries: int | None = None,
    ) -> AsyncGenerator[str, None]:
        """The reply in units of ``chunker`` (deltas by default), as they complete.

        A failed attempt is retried (with the policy's backoff) until the first unit has been
        yielded; after that a failure raises, since what was said cannot be unsaid.
        """
        self._admit()
        policy = (
            self.policy
            if retries is None
            else RetryPolicy(retries=retries, backoff=self.policy.backoff)
        )
        attempt = 0
        while True:
            units = (chunker or _Whole)()
            received = False
            deltas = self._open_stream(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
                first_token_timeout=first_token_timeout,
                idle_timeout=idle_timeout,
            )
            try:
                async with aclosing(deltas):
                    async for delta in deltas:
                        for unit in units.feed(delta):
                            received = True
                            yield unit
                for unit in units.flush():
                    received = True
                    yield unit
                if not received:
                    raise ModelError(f"{self.where}: the model sent an empty reply")
            except ModelError as exc:
                self._failed(attempt, exc)
                if received or not policy.again(attempt, exc):
                    self._settle(False)
                    raise
            except BaseException:  # closed early by the consumer, or cancelled
                self._settle(True if received else None)
                raise
            else:
                self._settle(True)
                return
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1

    async def chat(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
    ) -> str:
        """The whole reply, stripped; retried by the policy (each attempt within the endpoint's
        timeout; bound the whole call with ``asyncio.timeout``)."""
        self._admit()

        async def once() -> str:
            return await self._chat_once(
                messages, model=model, temperature=temperature, max_tokens=max_tokens
            )

        return await self._settled(once)

    async def speech(
        self, text: str, *, model: str, voice: str, response_format: SpeechFormat = "pcm"
    ) -> bytes:
        """Audio for ``text`` in ``response_format``; retried by the policy."""
        self._admit()

        async def once() -> bytes:
            return await self._speech_once(
                text, model=model, voice=voice, response_format=response_format
            )

        return await self._settled(once)

    async def _settled(self, once: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await self.policy.call(once, on_failure=self._failed)
        except ModelError:
            self._settle(False)
            raise
        except BaseException:  # cancelled (a caller's timeout): no verdict
            self._settle(None)
            raise
        self._settle(True)
        return result


class OpenAiModelClient(ResilientClient):
    """A :class:`ModelClient` on the real ``openai`` SDK (any OpenAI-compatible server)."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(policy=policy, breaker=breaker)
        from openai import AsyncOpenAI

        self._sdk: AsyncOpenAI = AsyncOpenAI(
            base_url=endpoint.base_url or None,
            api_key=endpoint.api_key or "unused",  # local OpenAI-compatible servers take no key
            timeout=endpoint.timeout,
            max_retries=0,  # the policy retries, not the SDK
        )
        self.where = urlsplit(str(self._sdk.base_url)).netloc or "openai"

    async def aclose(self) -> None:
        await self._sdk.close()

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
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + first_token_timeout
        try:
            async with asyncio.timeout(first_token_timeout):
                stream = await self._sdk.chat.completions.create(
                    model=model,
                    messages=_sdk_messages(messages),
                    temperature=temperature,
                    max_tokens=max_tokens,
                    stream=True,
                )
        except Exception as exc:
            raise self._translate(exc) from exc
        try:
            chunks = aiter(stream)
            got_text = False
            while True:
                limit = idle_timeout if got_text else first_deadline - loop.time()
                try:
                    async with asyncio.timeout(max(limit, 0.0)):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._translate(exc) from exc
                try:  # chunks are not validated by the SDK: a broken one lacks fields
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                except (AttributeError, IndexError, TypeError) as exc:
                    what = f"{self.where}: malformed chunk from the model: {chunk!r:.200}"
                    raise ModelError(redact(what)) from exc
                if isinstance(delta, str) and delta:
                    got_text = True
                    yield delta
        finally:
            await stream.close()

    async def _chat_once(
        self,
        messages: Sequence[ChatTurn],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
    ) -> str:
        try:
            reply = await self._sdk.chat.completions.create(
                model=model,
                messages=_sdk_messages(messages),
                temperature=temperature,
                max_tokens=max_tokens,
                stream=False,
            )
        except Exception as exc:
            raise self._translate(exc) from exc
        if not reply.choices:
            raise ModelError(f"{self.where}: the model sent no choices")
        return (reply.choices[0].message.content or "").strip()

    async def _speech_once(
        self, text: str, *, model: str, voice: str, response_format: SpeechFormat
    ) -> bytes:
        try:
            response = await self._sdk.audio.speech.create(
                model=model, voice=voice, input=text, response_format=response_format
            )
            return await response.aread()
        except Exception as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: BaseException) -> ModelError:
        """The SDK's error as a :class:`ModelError` that says whether a retry helps."""
        import openai

        where = self.where
        if isinstance(exc, ModelError):
            return exc
        if isinstance(exc, TimeoutError | openai.APITimeoutError):
            return ModelError(f"{where}: the model did not answer in time")
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(f"{where}: cannot connect ({redact(str(exc))[:200]})")
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            retry = code in (408, 409, 429) or code >= 500
            msg = redact(exc.message)[:200]
            return ModelError(f"{where}: HTTP {code}: {msg}", retryable=retry)
        if isinstance(exc, ValueError | openai.APIResponseValidationError):
            return ModelError(f"{where}: malformed reply from the model: {redact(str(exc))[:200]}")
        if isinstance(exc, openai.OpenAIError):
            return ModelError(f"{where}: {redact(str(exc))[:200]}", retryable=False)
        raise exc


def _sdk_messages(messages: Sequence[ChatTurn]) -> list[ChatCompletionMessageParam]:
    return cast("list[ChatCompletionMessageParam]", list(messages))
