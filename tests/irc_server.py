"""A real IRC server (Debian's ngircd) on loopback with TLS, and a tiny IRC client for viewers.

``make_ca`` writes a throwaway CA and a server certificate for 127.0.0.1 (``cryptography``);
``IrcServer`` runs ``ngircd --nodaemon`` with a config of its own on a free port (TLS only) and
can be stopped and started again on the same port, which is how the tests restart the chat
server under a connected source. ``Viewer`` is a blocking client: it registers, joins, says
lines and collects the PRIVMSGs it sees.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import tls_front
from rtmp_server import free_port


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """``(ca.pem, server.pem, server.key)`` for 127.0.0.1, valid for a day."""
    ca, signer = tls_front.make_ca(folder / "ca")
    leaf = tls_front.make_leaf(folder / "server", "127.0.0.1", signer)
    return ca.cert, leaf.cert, leaf.key


class IrcServer:
    """ngircd on 127.0.0.1:``port`` with TLS only; ``start``/``stop`` may repeat."""

    def __init__(self, folder: Path, password: str = "") -> None:
        self.folder = folder
        self.password = password
        self.ca, cert, key = make_ca(folder / "tls")
        self.port = free_port()
        self.conf = folder / "ngircd.conf"
        self.conf.write_text(
            "[Global]\n"
            "  Name = irc.test.local\n  Info = avatarcast tests\n"
            f"  Listen = 127.0.0.1\n  Ports =\n  PidFile = {folder / 'ngircd.pid'}\n"
            "  MotdPhrase = hello\n"
            + (f"  Password = {password}\n" if password else "")
            + "[Limits]\n  MaxConnectionsIP = 0\n  MaxJoins = 0\n  PingTimeout = 120\n"
            "  MaxNickLength = 30\n"
            "[Options]\n  PAM = no\n  DNS = no\n  Ident = no\n"
            "[SSL]\n"
            f"  CertFile = {cert}\n  KeyFile = {key}\n  Ports = {self.port}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_s: float = 10.0) -> None:
        log = (self.folder / "ngircd.log").open("ab")
        self.proc = subprocess.Popen(
            ["ngircd", "--nodaemon", "--config", str(self.conf)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"ngircd did not listen: {(self.folder / 'ngircd.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def url(self) -> str:
        return f"ircs://127.0.0.1:{self.port}"


class Viewer:
    """A blocking IRC client over TLS that trusts the test CA."""

    def __init__(self, server: IrcServer, nick: str, channel: str) -> None:
        context = ssl.create_default_context(cafile=str(server.ca))
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.nick, self.channel = nick, channel
        self.buffer = b""
        self.seen: list[tuple[str, str]] = []  # (nick, text) of PRIVMSGs to the channel
        if server.password:
            self._send(f"PASS {server.password}\r\n")
        self._send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
        self.wait_for(lambda line: " 001 " in line, 10)
        self._send(f"JOIN {channel}\r\n")
        self.wait_for(lambda line: " JOIN " in line and line.startswith(f":{nick}!"), 10)

    def _send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def say(self, text: str) -> None:
        self._send(f"PRIVMSG {self.channel} :{text}\r\n")

    def lines(self, timeout: float) -> list[str]:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return []
        if not data:
            raise ConnectionError("the IRC server closed the connection")
        self.buffer += data
        *complete, self.buffer = self.buffer.split(b"\r\n")
        out = []
        for raw in complete:
            line = raw.decode(errors="replace")
            if line.startswith("PING"):
                self._send("PONG" + line[4:] + "\r\n")
            if " PRIVMSG " in line:
                nick = line[1:].split("!", 1)[0]
                self.seen.append((nick, line.split(" :", 1)[1] if " :" in line else ""))
            out.append(line)
        return out

    def wait_for(self, match: object, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines(0.2):
                if callable(match) and match(line):
                    return line
        raise TimeoutError(f"{self.nick}: no matching line within {timeout} s")

    def close(self) -> None:
        try:
            self._send("QUIT :bye\r\n")
        except OSError:
            pass
        self.sock.close()
