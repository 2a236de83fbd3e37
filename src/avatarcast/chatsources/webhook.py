"""Signed webhook posts in (a merchant's relay for TikTok Shop, Douyin, a shop player) and
signed reply callbacks out.

A post carries ``X-Avatarcast-Timestamp`` (Unix seconds) and ``X-Avatarcast-Signature:
sha256=HEX``, the HMAC-SHA256 of ``TIMESTAMP + "." + BODY`` with the source's secret. It is
refused when the signature is wrong, the timestamp is more than ``window_s`` away from now, or
the same signature was seen within the window (a replay). Replies go to the source's
``reply_url`` as ``{"to", "text"}``, signed the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable

import httpx

__all__ = ["SignatureError", "WebhookVerifier", "reply_sender", "sign"]


class SignatureError(Exception):
    """A post that is not taken; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookVerifier:
    """Checks signature, age and replay of each post for one source."""

    def __init__(
        self, secret: str, *, window_s: float = 300.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self.window_s = window_s
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> None:
        if not timestamp or not signature:
            raise SignatureError("X-Avatarcast-Timestamp and X-Avatarcast-Signature are required")
        try:
            sent = float(timestamp)
        except ValueError:
            stamp = timestamp[:40]
            raise SignatureError(f"X-Avatarcast-Timestamp is not Unix seconds: {stamp!r}") from None
        if not hmac.compare_digest(sign(self._secret, timestamp, body), signature.strip()):
            raise SignatureError("the signature does not match the body and timestamp")
        now = self._clock()
        if abs(now - sent) > self.window_s:
            raise SignatureError(
                f"the timestamp is {now - sent:.0f} s from now (window ±{self.window_s:g} s)"
            )
        while self._seen and now - next(iter(self._seen.values())) > 2 * self.window_s:
            self._seen.popitem(last=False)
        if signature in self._seen:
            raise SignatureError("this post was already taken (replay)", status=409)
        self._seen[signature] = now

    def forget(self, signature: str) -> None:
        """Take a post with this signature again (its messages could not be saved: a retry of
        it is welcome; its messages are then counted as duplicates, once)."""
        self._seen.pop(signature, None)


def reply_sender(client: httpx.AsyncClient, url: str, secret: str) -> Callable[[str, str], object]:
    """A ``Reply`` that posts each answer to ``url``, signed with the source's secret."""

    async def reply(to: str, text: str) -> None:
        body = json.dumps({"to": to, "text": text}, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-avatarcast-timestamp": stamp,
            "x-avatarcast-signature": sign(secret, stamp, body),
        }
        response = await client.post(url, content=body, headers=headers)
        response.raise_for_status()

    return reply
