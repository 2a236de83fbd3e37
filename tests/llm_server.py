"""A real OpenAI-compatible HTTP server on loopback, scripted per test.

Each request to ``POST /v1/chat/completions`` takes the next behaviour from a queue: a reply
streamed token by token as server-sent events (or as one JSON body when ``stream`` is false),
an HTTP error, garbage bytes, an invalid JSON chunk, or a hang. The real ``openai`` client talks
to it over TCP, so tests exercise the SDK's own streaming, parsing and error mapping.

``POST /v1/audio/speech`` has its own queue (``script_speech``): real audio synthesised with
numpy (a voiced-sounding burst per syllable) as ``pcm`` (24 kHz s16le, like OpenAI) or ``wav``,
an HTTP error, or a hang.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import threading
import time
import wave
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class Reply:
    """Stream ``text`` a token at a time, ``token_delay`` apart, after ``first_delay``."""

    text: str
    token_delay: float = 0.01
    first_delay: float = 0.0


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error (429, 500 ...)."""

    code: int


@dataclass(frozen=True)
class Garbage:
    """Answer 200 with an event stream of bytes that are not server-sent events."""

    data: bytes = b"\x00\xff\xfe garbage \x89PNG\r\n\x1a\n not json at all\n\n"


@dataclass(frozen=True)
class BadJson:
    """Stream ``prefix`` tokens, then a ``data:`` line that is not JSON."""

    prefix: str = ""


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the server stops or ``seconds`` pass)."""

    seconds: float = 30.0


Behaviour = Reply | Status | Garbage | BadJson | Hang


@dataclass(frozen=True)
class Speech:
    """Answer ``/v1/audio/speech`` with ``seconds`` of audio (default: ``SPEECH_S_PER_CHAR`` a
    character of the input) in the requested format, at ``rate`` Hz, after ``delay``."""

    seconds: float | None = None
    rate: int = 24_000
    delay: float = 0.0


SpeechBehaviour = Speech | Status | Hang

SPEECH_S_PER_CHAR = 0.06
SYLLABLE_S = 0.2  # one voiced burst of 0.15 s, then 0.05 s of silence


def speech_pcm(seconds: float, rate: int = 24_000) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A deterministic voiced-sounding signal: bursts of a 140 Hz tone with harmonics."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    tone = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in (1, 2, 3, 4))
    phase = np.mod(t, SYLLABLE_S)
    envelope = np.where(phase < 0.15, np.sin(np.pi * np.minimum(phase, 0.15) / 0.15), 0.0)
    return np.rint(tone * envelope * 6000).astype(np.int16)


def wav_bytes(pcm: np.ndarray[Any, np.dtype[np.int16]], rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def tokens(text: str) -> list[str]:
    """Split like a tokenizer would: words with their leading space, Han characters one by one."""
    return re.findall(r"\s*[\u4e00-\u9fff]|\s*[^\s\u4e00-\u9fff]+|\s+", text)


def _chunk(content: str | None, *, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "delta": {} if content is None else {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class ScriptedLlmServer:
    """Serves scripted behaviours; ``default`` answers once the queue is empty."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default: Behaviour = default or Reply("Hello.")
        self.queue: deque[Behaviour] = deque()
        self.requests: list[dict[str, Any]] = []
        self.speech_default: SpeechBehaviour = Speech()
        self.speech_queue: deque[SpeechBehaviour] = deque()
        self.speech_requests: list[dict[str, Any]] = []
        self.speech_headers: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        self.queue.extend(behaviours)

    def script_speech(self, *behaviours: SpeechBehaviour) -> None:
        self.speech_queue.extend(behaviours)

    def reset(self) -> None:
        self.queue.clear()
        self.requests.clear()
        self.default = Reply("Hello.")
        self.speech_queue.clear()
        self.speech_requests.clear()
        self.speech_headers.clear()
        self.speech_default = Speech()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._handle, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLlmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the endpoint --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        behaviour = self.queue.popleft() if self.queue else self.default
        if isinstance(behaviour, Status):
            error = {"error": {"message": f"scripted {behaviour.code}", "type": "scripted"}}
            return JSONResponse(error, status_code=behaviour.code)
        if isinstance(behaviour, Hang):
            await self._sleep(behaviour.seconds)
            return JSONResponse({"error": {"message": "hung"}}, status_code=504)
        if isinstance(behaviour, Reply) and not body.get("stream"):
            await self._sleep(behaviour.first_delay)
            return JSONResponse(self._completion(behaviour.text))
        return StreamingResponse(self._events(behaviour), media_type="text/event-stream")

    async def _speech(self, request: Request) -> Response:
        body = await request.json()
        self.speech_requests.append(body)
        self.speech_headers.append(dict(request.headers))
        behaviour = self.speech_queue.popleft() if self.speech_queue else self.speech_default
        if isinstance(behaviour, Status):
            error = {"error": {"message": f"scripted {behaviour.code}", "type": "scripted"}}
            return JSONResponse(error, status_code=behaviour.code)
        if isinstance(behaviour, Hang):
            await self._sleep(behaviour.seconds)
            return JSONResponse({"error": {"message": "hung"}}, status_code=504)
        await self._sleep(behaviour.delay)
        seconds = behaviour.seconds
        if seconds is None:
            seconds = SPEECH_S_PER_CHAR * len(str(body.get("input", "")))
        pcm = speech_pcm(seconds, behaviour.rate)
        fmt = body.get("response_format", "mp3")
        if fmt == "pcm":
            return Response(pcm.astype("<i2").tobytes(), media_type="audio/pcm")
        if fmt == "wav":
            return Response(wav_bytes(pcm, behaviour.rate), media_type="audio/wav")
        error = {"error": {"message": f"format {fmt!r} not scripted", "type": "invalid"}}
        return JSONResponse(error, status_code=400)

    async def _events(self, behaviour: Behaviour) -> AsyncIterator[bytes]:
        if isinstance(behaviour, Garbage):
            yield behaviour.data
            return
        if isinstance(behaviour, BadJson):
            for token in tokens(behaviour.prefix):
                yield _chunk(token)
            yield b'data: {"id": "x", "choices": [{"delta": {"content": "oops"\n\n'
            return
        assert isinstance(behaviour, Reply)
        await self._sleep(behaviour.first_delay)
        for i, token in enumerate(tokens(behaviour.text)):
            if i:
                await self._sleep(behaviour.token_delay)
            yield _chunk(token)
        yield _chunk(None, finish="stop")
        yield b"data: [DONE]\n\n"

    async def _sleep(self, seconds: float) -> None:
        """Sleeps; a hang is ended by the server's one-second graceful shutdown."""
        await asyncio.sleep(seconds)

    @staticmethod
    def _completion(text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
