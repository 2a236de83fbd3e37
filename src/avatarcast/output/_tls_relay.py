"""The TLS leg of an ``rtmps://`` push, run as ``python -m avatarcast.output._tls_relay FD``.

FFmpeg's own TLS cannot do what an rtmps push needs here: given the checked address instead of
the name (so that DNS cannot send it elsewhere, see ``avatarcast.netpolicy``) it sends no SNI,
and the bundled GnuTLS looks for the system CA bundle where Debian has none. So the push
process speaks plain RTMP to this relay on loopback, and the relay holds the TLS connection:
to the checked address, with the destination's name as SNI, its certificate verified against
the system CA bundle (plus ``ca_file``) and that name. A separate process because PyAV holds
the GIL while it connects: a relay thread beside it would wait for the very handshake it serves.

Protocol: a JSON config line on stdin (``host``, ``addresses``, ``port``, ``ca_file``,
``timeout``); FD is a listening loopback socket. One JSON line on stdout: ``{"ok": true}`` once
the TLS handshake succeeded, else ``{"ok": false, "kind": "tls"|"connect", "error": ...}``.
Then it accepts one connection on FD and relays both ways until either side closes.
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import sys
from typing import Any

from avatarcast.netpolicy import Target, client_context

__all__ = ["main"]

_CHUNK = 64 * 1024


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _open(config: dict[str, Any]) -> ssl.SSLSocket | None:
    target = Target(str(config["host"]), tuple(config["addresses"]), int(config["port"]))
    timeout = float(config.get("timeout") or 5.0)
    try:
        context = client_context(config.get("ca_file"))
    except (OSError, ssl.SSLError) as e:
        _say({"ok": False, "kind": "config", "error": f"cannot read the CA file: {e}"})
        return None
    try:
        raw = target.connect(timeout)
    except OSError as e:
        _say({"ok": False, "kind": "connect", "error": f"{type(e).__name__}: {e}"})
        return None
    try:
        tls = context.wrap_socket(raw, server_hostname=target.host)
    except ssl.SSLCertVerificationError as e:
        raw.close()
        reason = e.verify_message or str(e)
        _say({"ok": False, "kind": "tls", "error": f"certificate not accepted: {reason}"})
        return None
    except (OSError, ssl.SSLError) as e:
        raw.close()
        _say({"ok": False, "kind": "tls", "error": f"TLS handshake failed: {e}"})
        return None
    tls.settimeout(None)
    return tls


def _relay(plain: socket.socket, tls: ssl.SSLSocket) -> None:
    """Copy both ways on one thread: an SSL object must not be read and written at once."""
    with selectors.DefaultSelector() as sel:
        sel.register(plain, selectors.EVENT_READ, "plain")
        sel.register(tls, selectors.EVENT_READ, "tls")
        while True:
            ready = ["tls"] if tls.pending() else [k.data for k, _ in sel.select()]
            for side in ready:
                if side == "plain":
                    data = plain.recv(_CHUNK)
                    if not data:
                        return
                    tls.sendall(data)
                else:
                    # readable may be only a TLS 1.3 session ticket: never wait for data here
                    tls.setblocking(False)
                    try:
                        data = tls.recv(_CHUNK)
                    except ssl.SSLWantReadError:
                        continue
                    finally:
                        tls.setblocking(True)
                    if not data:
                        return
                    plain.sendall(data)


def main(argv: list[str]) -> int:
    listener = socket.socket(fileno=int(argv[1]))
    config = json.loads(sys.stdin.readline())
    tls = _open(config)
    if tls is None:
        return 1
    _say({"ok": True})
    listener.settimeout(float(config.get("timeout") or 5.0) + 10)
    try:
        plain, _ = listener.accept()
    except OSError:
        return 1
    finally:
        listener.close()
    plain.settimeout(None)
    try:
        _relay(plain, tls)
    except OSError:
        return 1
    finally:
        for s in (plain, tls):
            s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
