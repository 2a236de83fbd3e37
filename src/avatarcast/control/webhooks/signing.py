"""How a delivery is signed, and how a receiver checks it (docs/webhooks.md).

The signature is ``sha256=<hex HMAC-SHA256 of the raw body, keyed by the webhook's secret>``.
The timestamp is signed too, because it is *inside* the body (``"timestamp"``, Unix seconds)
as well as in ``X-Avatarcast-Timestamp``: a receiver verifies the HMAC over the bytes it got,
then checks that the body's timestamp equals the header's and is recent, which refuses a
replayed old delivery. Nothing has to be re-serialised to verify: the raw bytes are signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureError",
    "body_of",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Avatarcast-Signature"
TIMESTAMP_HEADER = "X-Avatarcast-Timestamp"
EVENT_HEADER = "X-Avatarcast-Event"
DELIVERY_HEADER = "X-Avatarcast-Delivery"
_PREFIX = "sha256="


class SignatureError(ValueError):
    """A delivery that does not verify; the message says which check failed."""


def sign(secret: str, body: bytes) -> str:
    """The ``X-Avatarcast-Signature`` value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def body_of(payload: Mapping[str, Any], timestamp: int) -> bytes:
    """The bytes sent for one attempt: the event with the attempt's timestamp in it."""
    return json.dumps({**payload, "timestamp": timestamp}, separators=(",", ":")).encode()


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> dict[str, Any]:
    """What a receiver does: the parsed body when the signature and timestamp hold, else
    :class:`SignatureError`. ``headers`` is looked up case-insensitively."""
    lower = {k.lower(): v for k, v in headers.items()}
    sent = lower.get(SIGNATURE_HEADER.lower(), "")
    if not sent.startswith(_PREFIX):
        raise SignatureError(f"{SIGNATURE_HEADER} missing or not 'sha256=<hex>'")
    if not hmac.compare_digest(sent.encode(), sign(secret, body).encode()):
        raise SignatureError("signature does not match the body")
    try:
        parsed = json.loads(body)
        stamp = int(lower.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        raise SignatureError("body is not JSON or the timestamp header is not a number") from None
    if not isinstance(parsed, dict) or parsed.get("timestamp") != stamp:
        raise SignatureError("the body's timestamp differs from the header's")
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        raise SignatureError(f"timestamp {stamp} is more than {tolerance_s:g} s away")
    return parsed
