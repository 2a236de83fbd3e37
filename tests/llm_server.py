"""A real OpenAI-compatible HTTP server on loopback, scripted per test.

Each request to ``POST /v1/chat/completions`` takes the next behaviour from a queue: a reply
streamed token by token as server-sent events (or as one JSON body when ``stream`` is false),
an HTTP error, garbage bytes, an invalid JSON chunk, or a hang. The real ``openai`` client talks
to it over TCP, so tests exercise the SDK's own streaming, parsing and error mapping.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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
        self._stop = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        self.queue.extend(behaviours)

    def reset(self) -> None:
        self.queue.clear()
        self.requests.clear()
        self.default = Reply("Hello.")

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
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
