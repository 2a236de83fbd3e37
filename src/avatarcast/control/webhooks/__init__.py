"""Alerts to people: stream events delivered to each tenant's webhooks, signed, retried, and
kept on a dead-letter list when a receiver stays down. See docs/webhooks.md."""

from avatarcast.control.webhooks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    sign,
    verify,
)

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "SignatureError", "sign", "verify"]
