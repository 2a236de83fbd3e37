"""``serve`` keeps start-up's objects out of Python's full collections (``gc.freeze``)."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from avatarcast.control import create_app
from avatarcast.settings import Settings
from rtmp_server import free_port

FROZEN = re.compile(r"^avatarcast_python_gc_frozen_objects (\S+)$", re.MULTILINE)


def _frozen(metrics: str) -> float:
    found = FROZEN.search(metrics)
    assert found, metrics[:500]
    return float(found.group(1))


def test_an_app_made_in_a_test_leaves_gc_alone(tmp_path: Path) -> None:
    gc.unfreeze()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}")
    with TestClient(create_app(settings)) as client:
        assert _frozen(client.get("/metrics").text) == 0
    try:
        with TestClient(create_app(settings, freeze_gc=True)) as client:
            assert _frozen(client.get("/metrics").text) > 50_000
    finally:
        gc.unfreeze()  # this process makes many apps: let them all be collected


def test_serve_freezes_what_start_up_made(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AVATARCAST_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "AVATARCAST_RECORDINGS_DIR": str(tmp_path / "recordings"),
    }
    cmd = [sys.executable, "-m", "avatarcast.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # one client for the poll: ``httpx.get`` makes one per call, its TLS context included
    # (17 ms of CPU each), 5 times a second for the ~3-10 s that serve takes to start
    client = httpx.Client(timeout=2, trust_env=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            try:
                r = client.get(f"http://127.0.0.1:{port}/metrics")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.2)
        # modules, the app and its routes: the collections that scanned them took 80-140 ms
        assert _frozen(r.text) > 100_000
    finally:
        client.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
