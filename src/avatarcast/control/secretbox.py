"""Secrets at rest: destination stream keys are stored encrypted with the server key.

A stolen database file (or backup) then does not give anyone the right to push to a seller's
channel. The cipher is Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``); stored
values read ``fernet:<token>``. The key comes from ``secrets.server_key`` or, when that is
empty, from ``secrets.server_key_file``, created (0600) on first start.

Rotation: put a new key in ``server_key`` and the old one in ``previous_keys``, restart; start-up
re-encrypts every stream key with the new key (:func:`reseal_stream_keys`), after which the old
key can be dropped. Plain values written by an older version are encrypted the same way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.db.engine import normalise_url
from avatarcast.db.models import Destination
from avatarcast.errors import ConfigError
from avatarcast.settings import SecretsSettings

__all__ = ["SecretBox", "default_key_file", "load_box", "reseal_stream_keys"]

log = logging.getLogger(__name__)
PREFIX = "fernet:"


class SecretBox:
    """Seal with the current key; open with it or any previous one."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("the secret box needs at least one key")
        try:
            self._fernets = [Fernet(k) for k in keys]
        except ValueError as e:
            raise ConfigError(f"a server key is not a Fernet key: {e}") from None
        self._all = MultiFernet(self._fernets)

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernets[0].encrypt(plain.encode()).decode()

    def open(self, stored: str) -> str:
        """The plain value; a value without the prefix is a plain one from before encryption."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            return self._all.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored stream key cannot be decrypted with the server key or any "
                "previous key: was secrets.server_key changed without listing the old one "
                "in secrets.previous_keys?"
            ) from None

    def current(self, stored: str) -> bool:
        """Sealed with the current key (nothing to re-encrypt)."""
        if not stored.startswith(PREFIX):
            return False
        try:
            self._fernets[0].decrypt(stored[len(PREFIX) :].encode())
        except InvalidToken:
            return False
        return True


def _key_file(path: Path) -> bytes:
    """The key in ``path``, made (0600, in a 0700 folder) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return _key_file(path)
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
        log.warning("made a new server key in %s: back it up with the database", path)
        return key
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    key = path.read_bytes().strip()
    if not key:  # being written by another process this instant
        time.sleep(0.05)
        key = path.read_bytes().strip()
    return key


def default_key_file(database_url: str) -> Path:
    """``server.key`` beside a SQLite file, else ``./var/server.key``."""
    parsed = make_url(normalise_url(database_url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(str(parsed.database)).parent / "server.key"
    return Path("./var/server.key")


def load_box(settings: SecretsSettings, *, database_url: str) -> SecretBox:
    current = settings.server_key.get_secret_value().encode()
    if not current:
        current = _key_file(settings.server_key_file or default_key_file(database_url))
    previous = [k.get_secret_value().encode() for k in settings.previous_keys]
    return SecretBox([current, *previous])


def reseal_stream_keys(sessions: sessionmaker[Session], box: SecretBox) -> int:
    """Encrypt plain stream keys and re-encrypt those under a previous key; how many."""
    changed = 0
    with sessions() as session:
        rows = session.scalars(select(Destination).where(Destination.stream_key.is_not(None)))
        for row in rows:
            stored = row.stream_key or ""
            if stored and not box.current(stored):
                row.stream_key = box.seal(box.open(stored))
                changed += 1
        session.commit()
    if changed:
        log.info("re-encrypted %d stream keys with the current server key", changed)
    return changed
