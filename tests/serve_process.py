"""A real ``avatarcast serve`` process for tests of what a client sees over HTTP.

The in-process TestClient skips uvicorn: its access log, its header handling, the settings read
from the environment. Tests of those start the server as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from avatarcast.control import create_key, upgrade_database
from avatarcast.db import make_engine, make_sessionmaker
from rtmp_server import free_port


@dataclass
class Served:
    """The running server: ``client`` talks to it; ``keys[role]`` belong to tenant ``acme``,
    ``other_key`` (operator) to ``globex``; ``log`` is what the process wrote so far."""

    base: str
    client: httpx.Client
    log_path: Path
    database_url: str
    keys: dict[str, str] = field(default_factory=dict)
    other_key: str = ""

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Migrate a new SQLite database, make keys, run ``avatarcast serve ARGS`` until it answers.

    ``env`` adds ``AVATARCAST_*`` settings (the rate limit is lifted unless given)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade_database(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    keys = {
        role: create_key(sessions, tenant_name="acme", role=role)[1]
        for role in ("admin", "operator", "supervisor", "backend")
    }
    other = create_key(sessions, tenant_name="globex", role="operator")[1]
    engine.dispose()
    port = free_port()
    full_env = {
        **os.environ,
        "AVATARCAST_CONFIG": str(tmp_path / "none.toml"),
        "AVATARCAST_DATABASE_URL": database_url,
        "AVATARCAST_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "AVATARCAST_API__RATE_LIMIT__RATE": "10000",
        "AVATARCAST_API__RATE_LIMIT__BURST": "10000",
        **(env or {}),
    }
    (tmp_path / "none.toml").write_text("")
    log_path = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "avatarcast.cli", "serve", "--port", str(port), *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
            yield Served(base, client, log_path, database_url, keys, other)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
