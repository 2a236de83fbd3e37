"""API keys and destination URLs: the two places where a secret or an address comes in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from avatarcast.netpolicy import NetPolicy, NetRefused

KEY_PREFIX = "avk"
ROLES = ("admin", "operator", "supervisor", "backend")
#: What each role may act as. A supervisor is a person: an operator key acts as one only when it
#: is linked to a supervisor record (``supervisor_id``), see :func:`grants_of`; backend keys
#: write products and streams.
ROLE_GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset(ROLES),
    "operator": frozenset({"operator", "backend"}),
    "supervisor": frozenset({"supervisor"}),
    "backend": frozenset({"backend"}),
}


#: Roles whose keys may be linked to a supervisor record and then act as that person.
SUPERVISOR_LINKABLE = frozenset({"operator", "supervisor"})


def grants_of(role: str, supervisor_id: str | None) -> frozenset[str]:
    """What a key may act as: its role's grants, plus ``supervisor`` when it is linked to one."""
    grants = ROLE_GRANTS.get(role, frozenset())
    if supervisor_id is not None and role in SUPERVISOR_LINKABLE:
        return grants | {"supervisor"}
    return grants


@dataclass(frozen=True, slots=True)
class NewKey:
    id: str
    token: str  # shown once, never stored
    secret_hash: str


def hash_secret(key_id: str, secret: str) -> str:
    """HMAC-SHA256 of the secret keyed by its id: a stolen table does not give working keys."""
    return hmac.new(key_id.encode(), secret.encode(), hashlib.sha256).hexdigest()


def new_key() -> NewKey:
    """``avk_<12 hex id>_<43 chars of 32 random bytes>``."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", hash_secret(key_id, secret))


def split_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(key_id: str, secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(key_id, secret), stored_hash)


DESTINATION_SCHEMES = frozenset({"rtmp", "rtmps"})
_SECRET_QUERY = frozenset({"passphrase", "streamid", "key", "token", "secret", "password", "pass"})


class DestinationUrlError(ValueError):
    pass


def check_destination_url(url: str, *, policy: NetPolicy) -> str:
    """The URL if it is rtmp/rtmps to a host that resolves, now, to allowed addresses.

    The push checks the name again when it connects (``avatarcast.netpolicy``); this check
    tells the tenant at once. ``srt`` is refused until a sink can push it: a destination that
    is accepted and then never receives a frame is worse than a clear no.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as e:
        raise DestinationUrlError(f"not a valid URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme == "srt":
        raise DestinationUrlError("srt destinations are not supported yet: use rtmp or rtmps")
    if scheme not in DESTINATION_SCHEMES:
        raise DestinationUrlError("scheme must be rtmp or rtmps")
    host = parts.hostname
    if not host:
        raise DestinationUrlError("URL has no host")
    try:
        policy.check_host(host)
    except NetRefused as e:
        raise DestinationUrlError(str(e)) from None
    return url


def redact_url(url: str) -> str:
    """The URL without a password or secret query values, safe to return and to log."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = urlencode(
        [
            (k, "***" if k.lower() in _SECRET_QUERY else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
