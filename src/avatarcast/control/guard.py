"""Checks on every request before routing: body size (413) and NUL characters (422).

NUL is refused everywhere because PostgreSQL cannot store it in text or JSONB while SQLite
can: the API answers the same on both databases instead of failing on one.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avatarcast.control.problems import problem_response


class RequestGuardMiddleware:
    """Reads the body up to ``limit`` bytes before the app runs, checks it, then replays it."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected before the body ended
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _has_nul(scope, body, headers.get(b"content-type", b"")):
            response = problem_response(
                422,
                instance=scope.get("path"),
                detail="NUL characters are not accepted in paths, queries or JSON bodies",
                kind="validation",
                title="Request is not valid",
                errors=[{"field": "request", "message": "contains NUL", "type": "nul"}],
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            instance=scope.get("path"),
            detail=f"request body is larger than {self.limit} bytes",
            kind="body-too-large",
            limit_bytes=self.limit,
        )
        await response(scope, receive, send)


def _has_nul(scope: Scope, body: bytes, content_type: bytes) -> bool:
    if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
        return True
    return b"json" in content_type.lower() and b"\\u0000" in body.lower()
