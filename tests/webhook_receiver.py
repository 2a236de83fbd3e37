"""A webhook receiver on loopback that verifies every delivery as a customer's would.

Each POST is checked with ``avatarcast.control.webhooks.verify`` (HMAC of the raw body, the
signed timestamp); ``got`` keeps the verified bodies, ``refused`` what did not verify.
``fail_next`` answers that many deliveries 500 first (to exercise the retries).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from avatarcast.control.webhooks import SignatureError, verify


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.got: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.fail_next = 0
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.take(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        with self._lock:
            self.headers.append(headers)
            try:
                parsed = verify(self.secret, body, headers)
            except SignatureError as e:
                self.refused.append(str(e))
                return 401
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
            self.got.append(parsed)
            return 204

    def kinds(self) -> list[str]:
        with self._lock:
            return [str(b["kind"]) for b in self.got]

    def wait_for(self, kind: str, timeout: float = 30.0, **detail: Any) -> dict[str, Any]:
        """The first verified delivery of ``kind`` whose detail has ``detail``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for b in self.got:
                    d = b.get("detail") or {}
                    if b["kind"] == kind and all(d.get(k) == v for k, v in detail.items()):
                        return b
            assert time.monotonic() < deadline, f"no {kind} {detail} within {timeout} s: {self.got}"
            time.sleep(0.1)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
