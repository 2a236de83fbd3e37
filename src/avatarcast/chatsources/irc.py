"""Twitch chat over IRC (TLS, IRCv3 tags), or any IRC server that speaks the same lines.

One connection per source reads the channel and writes the answers: ``CAP REQ`` for the
Twitch tags (a plain IRC server just declines), ``PASS oauth:TOKEN`` when a token is set,
``NICK``/``USER``, ``JOIN``; ``PING`` is answered; ``RECONNECT`` or a dropped connection
reconnects with backoff and joins again. A ``PRIVMSG`` to the channel becomes an ``Inbound``
with the ``id`` tag as its message id (the de-duplication key), ``user-id`` as the viewer and
``display-name`` as the name; a server without tags gets a per-connection counter instead,
and the nick stands for the viewer. A Twitch ``CLEARMSG`` (a moderator deleted a message)
withdraws that message if it is still waiting for its answer.

The token is never logged, nor is any line that carries it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from avatarcast.chatsources.inbound import Backoff, Inbound, SourceHealth

__all__ = ["IrcLine", "IrcOptions", "IrcSource", "parse_line", "parse_server"]

log = logging.getLogger(__name__)

_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


@dataclass(frozen=True, slots=True)
class IrcLine:
    tags: dict[str, str]
    prefix: str
    command: str
    params: list[str]

    @property
    def nick(self) -> str:
        return self.prefix.split("!", 1)[0]


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            out.append(_TAG_ESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
            continue
        if c != "\\":
            out.append(c)
        i += 1
    return "".join(out)


def parse_line(raw: str) -> IrcLine:
    """One IRC line (RFC 1459 with IRCv3 message tags); raises ValueError when empty."""
    line = raw.rstrip("\r\n")
    tags: dict[str, str] = {}
    if line.startswith("@"):
        head, _, line = line.partition(" ")
        for item in head[1:].split(";"):
            k, _, v = item.partition("=")
            if k:
                tags[k] = _unescape(v)
    prefix = ""
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
    line = line.lstrip(" ")
    trailing = None
    if " :" in line:
        line, _, trailing = line.partition(" :")
    elif line.startswith(":"):
        line, trailing = "", line[1:]
    parts = line.split()
    if not parts:
        raise ValueError(f"not an IRC line: {raw[:80]!r}")
    params = parts[1:] + ([trailing] if trailing is not None else [])
    return IrcLine(tags, prefix, parts[0].upper(), params)


def parse_server(url: str) -> tuple[str, int, bool]:
    """``ircs://host:port`` (TLS, port 6697 by default) or ``irc://host:port`` (6667)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ircs", "irc") or not parts.hostname:
        raise ValueError(f"server must be ircs://host:port or irc://host:port, got {url!r}")
    tls = parts.scheme == "ircs"
    return parts.hostname, parts.port or (6697 if tls else 6667), tls


@dataclass(frozen=True, slots=True, kw_only=True)
class IrcOptions:
    source_id: str
    server: str
    channel: str
    username: str
    token: str = ""
    ca_file: str | None = None
    platform: str = "twitch"
    connect_timeout_s: float = 10.0


class IrcSource:
    """Reads one channel into ``deliver`` and sends answers to it; see the module docstring."""

    def __init__(
        self,
        options: IrcOptions,
        deliver: Callable[[Inbound], object],
        on_deleted: Callable[[str, str], object] = lambda source_id, message_id: None,
    ) -> None:
        self.options = options
        self._on_deleted = on_deleted
        self.host, self.port, self.tls = parse_server(options.server)
        channel = options.channel if options.channel.startswith("#") else f"#{options.channel}"
        self.channel = channel.lower()
        self._deliver = deliver
        self.health = SourceHealth(source_id=options.source_id, kind=options.platform)
        self._writer: asyncio.StreamWriter | None = None
        self._joined = asyncio.Event()
        self._seq = 0
        self._backoff = Backoff()

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context()
        if self.options.ca_file:
            context.load_verify_locations(cafile=self.options.ca_file)
        return context

    async def run(self) -> None:
        """Connect, read, reconnect with backoff, until cancelled."""
        while True:
            try:
                await self._session()
                self.health.last_error = "the server closed the connection"
            except (OSError, ssl.SSLError, TimeoutError, ValueError) as e:
                self.health.last_error = f"{type(e).__name__}: {e}"[:300]
            finally:
                self._joined.clear()
                self._writer = None
            delay = self._backoff.next()
            self.health.state, self.health.retry_in_s = "reconnecting", round(delay, 2)
            log.info("chat source %s: reconnecting in %.1f s", self.options.source_id, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        opts = self.options
        async with asyncio.timeout(opts.connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl(),
                server_hostname=self.host if self.tls else None,
            )
        self._writer = writer
        try:
            writer.write(b"CAP REQ :twitch.tv/tags twitch.tv/commands\r\n")
            if opts.token:
                token = opts.token if opts.token.startswith("oauth:") else f"oauth:{opts.token}"
                writer.write(f"PASS {token}\r\n".encode())
            writer.write(
                f"NICK {opts.username}\r\nUSER {opts.username} 0 * :{opts.username}\r\n".encode()
            )
            writer.write(b"CAP END\r\n")
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                try:
                    line = parse_line(raw.decode("utf-8", errors="replace"))
                except ValueError:
                    continue
                if not await self._handle(line, writer):
                    return
        finally:
            writer.close()

    async def _handle(self, line: IrcLine, writer: asyncio.StreamWriter) -> bool:
        """Act on one line; False to drop the connection (``RECONNECT``)."""
        cmd = line.command
        if cmd == "PING":
            writer.write(f"PONG :{line.params[-1] if line.params else ''}\r\n".encode())
            await writer.drain()
        elif cmd in ("001", "376", "422"):
            writer.write(f"JOIN {self.channel}\r\n".encode())
            await writer.drain()
        elif cmd == "JOIN" and line.nick.casefold() == self.options.username.casefold():
            self.health.state, self.health.retry_in_s, self.health.last_error = (
                "connected",
                None,
                None,
            )
            self.health.connects += 1
            self._backoff.reset()
            self._joined.set()
        elif cmd == "PRIVMSG" and len(line.params) >= 2 and line.params[0].lower() == self.channel:
            self._privmsg(line)
        elif cmd == "CLEARMSG" and line.tags.get("target-msg-id"):
            self._on_deleted(self.options.source_id, line.tags["target-msg-id"])
        elif cmd == "RECONNECT":
            return False
        elif cmd in ("433", "464", "465"):
            raise ValueError(f"the server refused the login ({cmd})")
        return True

    def _privmsg(self, line: IrcLine) -> None:
        self._seq += 1
        tags = line.tags
        message_id = tags.get("id") or f"c{self.health.connects}-{self._seq}"
        self.health.received += 1
        self._deliver(
            Inbound(
                source_id=self.options.source_id,
                platform=self.options.platform,
                message_id=message_id,
                viewer_id=tags.get("user-id") or line.nick.casefold(),
                name=tags.get("display-name") or line.nick,
                text=line.params[1],
                reply_to=self.channel,
            )
        )

    async def reply(self, to: str, text: str) -> None:
        """``PRIVMSG`` one line to the channel, waiting up to 5 s for a (re)connection."""
        async with asyncio.timeout(5.0):
            await self._joined.wait()
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected to the chat server")
        flat = " ".join(text.split())
        writer.write(f"PRIVMSG {to or self.channel} :{flat}\r\n".encode())
        await writer.drain()
        self.health.sent += 1
