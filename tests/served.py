"""A real ``avatarcast serve`` process on loopback, for tests of what a client sees over HTTP.

The database is migrated and seeded with keys before the server starts: tenant ``acme`` has a
key of every role, tenant ``globex`` an operator key. Settings go in as ``AVATARCAST_*``
environment variables, the way an operator sets them.
"""

from __future__ import annotations

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

ROLES = ("admin", "operator", "supervisor", "backend")


@dataclass
class Served:
    url: str
    database_url: str
    root: Path
    proc: subprocess.Popen[bytes]
    tenant_id: str
    keys: dict[str, str] = field(default_factory=dict)
    other_key: str = ""

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    @property
    def other(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.other_key}"}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def output(self) -> str:
        """What the server logged so far."""
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
    seeded: bool = True,
    wait_s: float = 60.0,
    prepare: Callable[[str, str], None] | None = None,
) -> Iterator[Served]:
    """Start ``avatarcast serve`` on a free port with its database and recordings in ``root``;
    stop it with SIGINT (a clean shutdown) at the end. ``prepare(database_url, tenant_id)``
    writes rows before the server starts (what a restart finds)."""
    root.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{root / 'var' / 'avatarcast.db'}"
    tenant_id, keys, other = seed(database_url) if seeded else ("", {}, "")
    if prepare is not None:
        prepare(database_url, tenant_id)
    port = free_port()
    full_env = {
        **os.environ,
        "AVATARCAST_DATABASE_URL": database_url,
        "AVATARCAST_RECORDINGS_DIR": str(root / "recordings"),
        "AVATARCAST_API__RATE_LIMIT__RATE": "10000",
        "AVATARCAST_API__RATE_LIMIT__BURST": "10000",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "avatarcast.cli", "serve", "--port", str(port)]
    with (root / "serve.log").open("wb") as log:  # a file: a full pipe would stall the server
        proc = subprocess.Popen(cmd, env=full_env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", database_url, root, proc, tenant_id, keys, other)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited: {served.output()[-3000:]}")
            try:
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not answer within {wait_s} s"
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


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
