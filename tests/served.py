"""A real ``avatarcast serve`` process on loopback, for tests of what a client sees over HTTP.

The in-process TestClient skips uvicorn (its access log, its header handling, the settings read
from the environment); these tests start the server as an operator would. ``serve`` runs it on a
free port with its database, recordings and HLS files under one folder; settings go in as
``AVATARCAST_*`` environment variables. The database is migrated and seeded first: tenant
``acme`` has a key of every role, tenant ``globex`` an operator key. The server is ready when
``/readyz`` answers; what it printed is in ``Served.output()`` and goes to stderr (shown by
pytest) when the block fails. The end is a SIGINT, a clean shutdown. The server is forked from a
process that has imported ``serve`` once (``tests/serve_zygote.py``: ~3 CPU s less per start),
except under a ``wrap``, with a spare worker, or with ``AVATARCAST_TEST_COLD_SERVE=1``, where
it is exec'd.

One module with several tests on the same settings shares one server through a module-scoped
fixture; a test that needs its own settings or a fresh database starts its own.

Also here: ``live_stream`` (a stream on air through the API) and the HLS helpers used by
``test_hls_player.py`` and ``benchmarks/hls_bench.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from avatarcast.control import create_key, upgrade_database
from avatarcast.db import make_engine, make_sessionmaker
from rtmp_server import free_port
from serve_zygote import ForkedServe, cold_serve, zygote
from sqlite_template import migrated_sqlite

ROLES = ("admin", "operator", "supervisor", "backend")

#: the TLS context of every client made here: without one, ``httpx.Client`` builds its own and
#: loads the CA bundle (16.8 ms of CPU a client against 0.03 ms with this one, measured on this
#: suite's machine under httpx 0.29), and tests make a client per check, some in 10 Hz polls.
#: It is the context httpx makes by default (certifi's CAs), made once.
TLS = httpx.create_ssl_context()


@dataclass
class Served:
    """The running server. ``keys[role]`` belong to tenant ``acme`` (``tenant_id``),
    ``other_key`` (operator) to ``globex``; both are empty when the database was not seeded."""

    url: str
    database_url: str
    root: Path
    proc: subprocess.Popen[bytes] | ForkedServe
    tenant_id: str
    keys: dict[str, str] = field(default_factory=dict)
    other_key: str = ""

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    @property
    def other(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.other_key}"}

    def client(self, role: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """A client of the server (no proxy from the environment); with ``role``, that
        ``acme`` key goes with every request."""
        headers = self.auth(role) if role else None
        return httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, trust_env=False, verify=TLS
        )

    def output(self) -> str:
        """What the server printed so far."""
        return (self.root / "serve.log").read_text(errors="replace")

    @staticmethod
    def problem(response: httpx.Response, status: int) -> dict[str, Any]:
        """Assert an RFC 9457 problem with ``status`` and return its body."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body: dict[str, Any] = response.json()
        assert body["status"] == status and body["title"] and body["type"]
        return body


def seed(database_url: str) -> tuple[str, dict[str, str], str]:
    """Migrate; ``(acme tenant id, {role: key}, globex operator key)``."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        keys, tenant_id = {}, ""
        for role in ROLES:
            tenant_id, keys[role] = create_key(sessions, tenant_name="acme", role=role)
        _, other = create_key(sessions, tenant_name="globex", role="operator")
        return tenant_id, keys, other
    finally:
        engine.dispose()


@contextmanager
def serve(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    args: tuple[str, ...] = (),
    seeded: bool = True,
    wait_s: float = 60.0,
    prepare: Callable[[str, str], None] | None = None,
    wrap: tuple[str, ...] = (),
    database_url: str | None = None,
) -> Iterator[Served]:
    """Run ``avatarcast serve ARGS`` on a free port with everything it keeps in ``root`` until
    ``/readyz`` answers; stop it at the end. ``env`` adds ``AVATARCAST_*`` settings (the rate
    limit is lifted unless given). ``seeded=False`` keeps the database as it is (a restart).
    ``prepare(database_url, tenant_id)`` writes rows before the server starts. ``wrap`` goes
    before the command (e.g. ``unshare ... sh -c 'mount ...; exec "$@"'``). ``database_url``:
    another database (PostgreSQL from ``pg_server``) in place of SQLite under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if database_url is None:
        database = root / "var" / "avatarcast.db"
        if seeded:  # a copy of this process's migrated template: seed's migration is a no-op
            migrated_sqlite(database)
        database_url = f"sqlite:///{database}"
    tenant_id, keys, other = seed(database_url) if seeded else ("", {}, "")
    if prepare is not None:
        prepare(database_url, tenant_id)
    (root / "none.toml").write_text("")  # no config file from the environment or the cwd
    full_env = {
        **os.environ,
        "AVATARCAST_CONFIG": str(root / "none.toml"),
        "AVATARCAST_DATABASE_URL": database_url,
        "AVATARCAST_RECORDINGS_DIR": str(root / "recordings"),
        "AVATARCAST_HLS__DIR": str(root / "hls"),
        "AVATARCAST_API__RATE_LIMIT__RATE": "10000",
        "AVATARCAST_API__RATE_LIMIT__BURST": "10000",
        # a spare worker costs a worker's imports (~1.2 s CPU) per server: only where tested
        "AVATARCAST_RUNNER__SPARE_WORKER": "false",
        # the zygote too (and tests that look for workers among serve's children find them)
        "AVATARCAST_RUNNER__ZYGOTE": "false",
        **(env or {}),
    }
    port = free_port()
    argv = ("serve", "--port", str(port), *args)
    proc: subprocess.Popen[bytes] | ForkedServe
    # exec'd under a wrap, and with a spare worker: test_alerts_webhooks times its first stream
    # against the spare's start-up, which a forked server's earlier /readyz moves (its recording
    # before the SIGKILL came out under 1 s in 2 of 3 forked runs at load 17-20, 0 of 1 exec'd)
    if wrap or cold_serve() or full_env["AVATARCAST_RUNNER__SPARE_WORKER"] == "true":
        cmd = [*wrap, sys.executable, "-m", "avatarcast.cli", *argv]
        with (root / "serve.log").open("wb") as log:  # a file: a full pipe would stall it
            proc = subprocess.Popen(
                cmd, env=full_env, cwd=root, stdout=log, stderr=subprocess.STDOUT
            )
    else:  # forked from this process's zygote: its imports are done (tests/serve_zygote.py)
        proc = zygote().start(argv, env=full_env, cwd=root, log=root / "serve.log")
    served = Served(f"http://127.0.0.1:{port}", database_url, root, proc, tenant_id, keys, other)
    try:
        _wait_ready(served, wait_s)
        yield served
    except BaseException:
        sys.stderr.write(f"--- avatarcast serve output (tail) ---\n{served.output()[-6000:]}\n")
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _wait_ready(served: Served, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    with served.client(timeout=2) as c:
        while True:
            if served.proc.poll() is not None:
                raise AssertionError(f"serve exited: {served.output()[-3000:]}")
            try:
                if c.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve was not ready within {wait_s} s"
            time.sleep(0.1)


FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}


def live_stream(
    c: httpx.Client, op: dict[str, str], *, wait_s: float = 90.0, **stream: Any
) -> tuple[str, dict[str, str]]:
    """A stream of the tenant of ``op`` (an operator key), with a product, its supervisor on
    duty (an operator key linked to a supervisor record), started and live: ``(id, that
    key's headers)``."""
    person = {"full_name": "Ana Lopez", "contact": "ana@example.com", "reference": "P-1"}
    sup_id = c.post("/v1/supervisors", json=person, headers=op).json()["id"]
    link = {"name": "me", "role": "operator", "supervisor_id": sup_id}
    me = {"Authorization": f"Bearer {c.post('/v1/keys', json=link, headers=op).json()['key']}"}
    c.post("/v1/products", json=FRYER, headers=me)
    body = {"name": "night", **stream}
    sid = c.post("/v1/streams", json=body, headers=me).json()["id"]
    duty = c.post(f"/v1/streams/{sid}/supervisor/duty", json={"supervisor_id": sup_id}, headers=me)
    assert duty.status_code == 200, duty.text
    r = c.post(f"/v1/streams/{sid}/start", headers=me)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + wait_s
    while c.get(f"/v1/streams/{sid}", headers=me).json()["status"]["state"] != "live":
        assert time.monotonic() < deadline, "the stream did not go live"
        time.sleep(0.2)
    return sid, me


# --- HLS: the stream goes through the API as a shop sets it up (catalog import, a supervisor
# on duty, ``hls`` in stream create, start), the worker writes HLS, ``serve`` is the origin, and
# the embed page (in Debian's Chromium) uses the pinned hls.js.

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]

#: What the page shows, read in one go: playhead, decoded frames, hls.js' view, the label.
PAGE_STATE = """() => {
  const v = document.getElementById('video');
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
  return {t: v.currentTime, frames: q.totalVideoFrames || 0, paused: v.paused, muted: v.muted,
          w: v.videoWidth, h: v.videoHeight, latency: window.avatarcast.latency,
          label: window.avatarcast.label, engine: window.avatarcast.engine,
          errors: window.avatarcast.errors.slice(-5),
          product: document.getElementById('product').textContent,
          href: (document.querySelector('#product a') || {}).href || null};
}"""


def shop_catalog() -> list[dict[str, Any]]:
    """The demo catalog with a product page for each product, as a shop has them."""
    body = json.loads(DEMO.read_text())
    products: list[dict[str, Any]] = body["products"] if isinstance(body, dict) else body
    for p in products:
        p["url"] = f"https://shop.example/p/{p['id']}"
    return products


def _viewer_urls(s: Served, stream: dict[str, Any], hls: dict[str, Any]) -> None:
    q = "" if hls.get("public") else f"?token={stream['whep_token']}"
    stream["embed"] = s.url + stream["embed_url"] + q
    stream["playlist"] = s.url + stream["hls_url"] + q


def hls_stream(s: Served, name: str, hls: dict[str, Any]) -> dict[str, Any]:
    """An ``acme`` stream with ``hls`` that is not started: ``embed`` and ``playlist`` are its
    viewer URLs, ``folder`` is where its HLS files go."""
    with s.client("operator") as c:
        r = c.post("/v1/streams", json={"name": name, "hls": hls})
        assert r.status_code == 201, r.text
    stream: dict[str, Any] = r.json()
    _viewer_urls(s, stream, hls)
    stream["folder"] = s.root / "hls" / s.tenant_id / stream["id"]
    return stream


def live_hls_stream(
    s: Served, name: str, hls: dict[str, Any], timeout: float = 90
) -> dict[str, Any]:
    """Import the demo catalog (once), create an ``acme`` stream with ``hls``, put a supervisor
    on duty, start it, and wait until its playlist lists two segments."""
    with s.client("operator") as c:
        if c.get("/v1/products").json().get("items") in (None, []):
            r = c.post("/v1/products/import?format=json", json=shop_catalog())
            assert r.status_code == 200, r.text
        r = c.post("/v1/streams", json={"name": name, "hls": hls})
        assert r.status_code == 201, r.text
        stream: dict[str, Any] = r.json()
        body = {"full_name": "Sam Watcher", "contact": "+31 20 555 0100", "reference": "ID-1"}
        sup = c.post("/v1/supervisors", json=body).json()["id"]
        key = c.post(
            "/v1/keys", json={"name": "sup", "role": "supervisor", "supervisor_id": sup}
        ).json()["key"]
        r = c.post(
            f"/v1/streams/{stream['id']}/supervisor/duty",
            json={"supervisor_id": sup},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        r = c.post(f"/v1/streams/{stream['id']}/start")
        assert r.status_code == 200, r.text
        _viewer_urls(s, stream, hls)
        deadline = time.monotonic() + timeout
        while True:
            r = c.get(stream["playlist"])
            if r.status_code == 200 and r.text.count("#EXTINF:") >= 2:
                return stream
            status = c.get(f"/v1/streams/{stream['id']}").json()["status"]
            assert status["state"] not in ("failed", "crashed"), status
            assert time.monotonic() < deadline, f"no playlist: {status} {r.status_code}"
            time.sleep(0.5)


def stop_stream(s: Served, stream_id: str) -> None:
    with s.client("operator") as c:
        c.post(f"/v1/streams/{stream_id}/stop")
