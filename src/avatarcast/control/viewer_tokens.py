"""Viewer access to a stream's playback: the stream's token, short-lived signed tokens, a budget.

The stream's viewer token (``whep_token``) is a long-lived secret an operator hands to people
they trust; it can be rotated. For a player embedded in a public page, an operator signs a
short-lived token instead: ``v1.<expiry>.<signature>``, an HMAC-SHA256 of the stream id and
the expiry keyed with the stream's token. It needs no table, cannot be moved to another
stream, and rotating the stream's token revokes every signed one at once.

Playback needs no API key, so its requests get a budget of their own (per client address and
in total): a flood of WHEP offers from viewers never spends an operator's API budget, and a
single address cannot keep a stream's WHEP server busy with offers (OWASP API4:2023).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from avatarcast.control.ratelimit import TokenBuckets

__all__ = ["ViewerBudget", "sign_viewer_token", "viewer_token_valid"]

_PREFIX = "v1"


def _signature(stream_token: str, stream_id: str, expires: int) -> str:
    mac = hmac.new(stream_token.encode(), f"{stream_id}.{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def sign_viewer_token(stream_token: str, stream_id: str, expires: int) -> str:
    """A token for ``stream_id`` valid until ``expires`` (Unix seconds)."""
    return f"{_PREFIX}.{expires}.{_signature(stream_token, stream_id, expires)}"


def viewer_token_valid(
    given: str, *, stream_token: str, stream_id: str, now: float | None = None
) -> bool:
    """``given`` is the stream's token, or a signed token for this stream not yet expired."""
    if secrets.compare_digest(given.encode(), stream_token.encode()):
        return True
    parts = given.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1].isdigit():
        return False
    expires = int(parts[1])
    expected = _signature(stream_token, stream_id, expires)
    if not secrets.compare_digest(parts[2].encode(), expected.encode()):
        return False
    return (time.time() if now is None else now) < expires


class ViewerBudget:
    """Token buckets for unauthenticated playback requests: per client address and in total."""

    def __init__(
        self, *, per_client_rate: float, per_client_burst: int, total_rate: float, total_burst: int
    ) -> None:
        self._clients = TokenBuckets(rate=per_client_rate, burst=per_client_burst)
        self._total = TokenBuckets(rate=total_rate, burst=total_burst)

    def take(self, client: str) -> float:
        """0.0 if the request may go ahead, else the seconds to wait."""
        wait = self._clients.take(client)
        if wait > 0:
            return wait
        if len(self._clients) > 10_000:  # addresses that went quiet: a full bucket is no state
            self._clients.forget_full()
        return self._total.take("*")
