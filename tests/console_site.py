"""The web console's test site: a real ``avatarcast serve`` subprocess with its seed
(operators, a supervisor, streams ``one`` and ``two``, another tenant's) and Debian's
chromium (playwright), one of each per test module (``pytest_plugins = ("console_site",)``),
and the helpers the console tests share. Heartbeats lapse after 6 s here, so a stream the
test is not watching goes to its safe slate soon; tests that need the programme keep beating.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from avatarcast.control import create_key, upgrade_database
from avatarcast.db import make_engine, make_sessionmaker
from rtmp_server import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
CATALOG = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
HEARTBEAT_TIMEOUT_S = 6.0
ACTIVITY_S = 600.0  # the heartbeat test runs the page clock past it


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    keys: dict[str, str]
    streams: dict[str, str] = field(default_factory=dict)
    other_stream: str = ""
    supervisor_id: str = ""
    #: one client for every API call of the module: ``httpx.request`` makes a client per call,
    #: its TLS context included (28 ms of CPU a call against 1.5 ms on a kept client, measured
    #: on this suite's machine), and ``wait`` polls 10 times a second. Only ``/v1`` calls go
    #: through it, and those set no cookie, so each call is what a fresh client sends.
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def auth(self, who: str = "operator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def call(self, method: str, path: str, who: str = "operator", **kw: Any) -> httpx.Response:
        headers = {**self.auth(who), **kw.pop("headers", {})}
        return self.client.request(method, self.base + path, headers=headers, **kw)

    def status(self, stream_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/v1/streams/{stream_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait(self, what: Callable[[], Any], seconds: float, message: str) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            value = what()
            if value:
                return value
            assert time.monotonic() < deadline, message
            time.sleep(0.1)


def _start(tmp: Path) -> Server:
    url = f"sqlite:///{tmp / 'console.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    keys = {}
    _, keys["operator"] = create_key(sessions, tenant_name="acme", role="operator")
    _, keys["backend"] = create_key(sessions, tenant_name="acme", role="backend")
    _, keys["spare"] = create_key(sessions, tenant_name="acme", role="operator")
    _, keys["other"] = create_key(sessions, tenant_name="globex", role="operator")
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "AVATARCAST_DATABASE_URL": url,
        "AVATARCAST_RECORDINGS_DIR": str(tmp / "recordings"),
        "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
        "AVATARCAST_SUPERVISION__STOP_AFTER_S": "3600",
        "AVATARCAST_CONSOLE__ACTIVITY_S": str(ACTIVITY_S),
        "AVATARCAST_API__RATE_LIMIT__RATE": "1000",
        "AVATARCAST_API__RATE_LIMIT__BURST": "1000",
        # a destination on this host may resolve to loopback (the destination form's test)
        "AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["localhost"]',
        # no spare worker and no zygote: the killed-worker test finds the stream's worker among
        # serve's children (the spare is tests/test_alerts_webhooks.py's, the zygote
        # tests/test_zygote.py's)
        "AVATARCAST_RUNNER__SPARE_WORKER": "false",
        "AVATARCAST_RUNNER__ZYGOTE": "false",
    }
    cmd = [sys.executable, "-m", "avatarcast.cli", "serve", "--port", str(port)]
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, keys)
    deadline = time.monotonic() + 120  # a wait, not a check: 60 s ran out at load average 28
    try:
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()[-3000:]
            try:
                if server.client.get(server.base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not get ready within 120 s"
            time.sleep(0.2)
    except BaseException:
        proc.kill()  # never left running after a failed start (it was, at load 28)
        proc.wait()
        server.client.close()
        raise
    return server


def _seed(server: Server) -> None:
    r = server.call(
        "POST",
        "/v1/products/import?format=json",
        content=CATALOG.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    body = {"full_name": "Night Supervisor", "contact": "+31 20 555 0100", "reference": "S-1"}
    r = server.call("POST", "/v1/supervisors", json=body)
    assert r.status_code == 201, r.text
    server.supervisor_id = r.json()["id"]
    made = {"name": "wall", "role": "supervisor", "supervisor_id": server.supervisor_id}
    r = server.call("POST", "/v1/keys", json=made)
    assert r.status_code == 201, r.text
    server.keys["supervisor"] = r.json()["key"]
    for name, approve in (("one", False), ("two", True)):
        body2 = {"name": name, "approve_answers": approve}
        r = server.call("POST", "/v1/streams", json=body2)
        assert r.status_code == 201, r.text
        server.streams[name] = r.json()["id"]
    r = server.call("POST", "/v1/streams", who="other", json={"name": "theirs"})
    assert r.status_code == 201, r.text
    server.other_stream = r.json()["id"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    tmp = Path(tempfile.mkdtemp(prefix="console-"))
    running = _start(tmp)
    try:
        _seed(running)
        yield running
    finally:
        running.proc.send_signal(signal.SIGINT)
        try:
            running.proc.wait(40)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()
        running.client.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (this test never skips)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _page(browser: Any, server: Server, who: str | None, **context: Any) -> Any:
    """A new context's page, signed in as ``who`` through the sign-in form."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, **context)
    page = ctx.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    if who is not None:
        page.goto(server.base + "/console/sign-in")
        page.get_by_label("API key").fill(server.keys[who])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/**", wait_until="domcontentloaded")
        assert "/sign-in" not in page.url, page.content()[:2000]
    return page


class Beats:
    """Heartbeats from a thread, for tests that need a programme rather than a slate."""

    def __init__(self, server: Server, stream_id: str) -> None:
        self.server, self.stream_id = server, stream_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        url = f"{self.server.base}/v1/streams/{self.stream_id}/supervisor/heartbeat"
        # its own kept client: it calls from this thread beside the test's calls
        with httpx.Client(headers=self.server.auth("supervisor"), timeout=30) as client:
            while not self._stop.wait(1.0):
                try:
                    client.post(url)
                except httpx.HTTPError:
                    pass

    def __enter__(self) -> Beats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _on_duty(server: Server, stream_id: str) -> None:
    r = server.call(
        "POST",
        f"/v1/streams/{stream_id}/supervisor/duty",
        who="supervisor",
        json={"supervisor_id": server.supervisor_id},
    )
    assert r.status_code == 200, r.text


def _live(server: Server, stream_id: str) -> None:
    """Start ``stream_id`` unless it runs (each test can run alone)."""
    if server.status(stream_id)["desired_state"] == "stopped":
        _on_duty(server, stream_id)
        r = server.call("POST", f"/v1/streams/{stream_id}/start")
        assert r.status_code == 200, r.text


def _events_open(response: Any) -> bool:
    """The console page's event stream answered (its headers: the stream is open)."""
    return "/console/events?" in response.url and response.ok


def _frames(page: Any, selector: str) -> int:
    return int(
        page.evaluate(
            f"document.querySelector({json.dumps(selector)}).getVideoPlaybackQuality()"
            ".totalVideoFrames"
        )
    )


def _playing(page: Any, selector: str, timeout_s: float = 60) -> None:
    page.wait_for_function(
        f"document.querySelector({json.dumps(selector)})?.videoWidth === 1280",
        timeout=timeout_s * 1000,
    )
    first = _frames(page, selector)
    quality = f"document.querySelector({json.dumps(selector)}).getVideoPlaybackQuality()"
    try:  # polled: five more decoded frames, within 2 s
        page.wait_for_function(f"{quality}.totalVideoFrames >= {first + 5}", timeout=2000)
    except PlaywrightTimeout:
        pytest.fail(f"the preview's decoded frames did not rise: {_frames(page, selector)}")
