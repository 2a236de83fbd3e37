"""One HTTP POST of one delivery, to the address the net policy checked at that moment.

The receiver's host is resolved and checked when the webhook is saved *and* before every
attempt (``avatarcast.netpolicy``): the request goes to the checked address, with the name in
``Host`` and, for https, in SNI and the certificate check, so a name re-pointed at a private
address after it was saved (DNS rebinding) is refused, not reached. Redirects are not followed
(one could lead anywhere).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpcore

from avatarcast.control.webhooks.store import Outcome
from avatarcast.netpolicy import NetPolicy, NetRefused, client_context, netloc

__all__ = ["WebhookUrlError", "check_url", "post"]

_SCHEMES = ("http", "https")


class WebhookUrlError(ValueError):
    """A webhook URL this server will not call; the message is safe to show the tenant."""


def check_url(url: str, *, policy: NetPolicy) -> str:
    """``url`` if it is http(s) to a host that resolves, now, to addresses ``policy`` allows."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as e:
        raise WebhookUrlError(f"not a valid URL: {e}") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise WebhookUrlError("scheme must be http or https")
    if not parts.hostname:
        raise WebhookUrlError("URL has no host")
    if parts.username or parts.password:
        raise WebhookUrlError("no user or password in the URL: the secret signs each delivery")
    try:
        policy.check_host(parts.hostname)
    except NetRefused as e:
        raise WebhookUrlError(str(e)) from None
    return url


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    policy: NetPolicy,
    timeout_s: float,
    ca_file: str | None = None,
) -> Outcome:
    """POST ``body``; the receiver's status, or an error naming what failed (never the URL's
    query, which may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    try:
        target = policy.target(host, port)
    except NetRefused as e:
        return Outcome(error=str(e))
    context = client_context(ca_file) if https else None
    timeout = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    extensions: dict[str, object] = {"timeout": timeout}
    if https:
        extensions["sni_hostname"] = host
    sent = [(k.encode(), v.encode()) for k, v in headers.items()]
    sent.append((b"Host", parts.netloc.rpartition("@")[2].encode()))
    errors: list[str] = []
    # httpcore, not httpx: httpx logs every request's URL at INFO, and a receiver's URL may
    # hold its own secret in the path (Slack-style hooks); nothing here logs the URL
    with httpcore.ConnectionPool(ssl_context=context, retries=0) as pool:
        for address in target.addresses:
            pinned = urlunsplit(parts._replace(netloc=netloc(address, port)))
            try:
                response = pool.request(
                    "POST", pinned, headers=sent, content=body, extensions=extensions
                )
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as e:
                errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            return Outcome(status=response.status)
    return Outcome(error="; ".join(errors) or f"no address for {host!r}")
