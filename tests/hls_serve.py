"""A real ``avatarcast serve`` with one live HLS stream, and Chromium watching its embed page.

Used by ``test_hls_player.py`` and ``benchmarks/hls_bench.py``: the stream goes through the
API as a shop would set it up (catalog import, a supervisor on duty, ``hls`` in stream create,
start), the worker writes HLS, ``serve`` is the origin, and the page uses the pinned hls.js.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from avatarcast.control import create_key, upgrade_database
from avatarcast.db import make_engine, make_sessionmaker
from rtmp_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
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


@dataclass
class Serve:
    """``avatarcast serve`` on a free loopback port with its own SQLite database."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    key: str = ""
    tenant_id: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        db = f"sqlite:///{self.workdir / 'serve.db'}"
        upgrade_database(db)
        engine = make_engine(db)
        self.tenant_id, self.key = create_key(
            make_sessionmaker(engine), tenant_name="shop", role="operator"
        )
        engine.dispose()
        env = {
            **os.environ,
            "AVATARCAST_DATABASE_URL": db,
            "AVATARCAST_RECORDINGS_DIR": str(self.workdir / "recordings"),
            "AVATARCAST_HLS__DIR": str(self.workdir / "hls"),
        }
        log = open(self.workdir / "serve.log", "wb")
        cmd = [sys.executable, "-m", "avatarcast.cli", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log()[-3000:]
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not get ready: " + self.log()[-3000:]
            time.sleep(0.3)

    def log(self) -> str:
        return (self.workdir / "serve.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def hls_stream(self, name: str, hls: dict[str, Any]) -> dict[str, Any]:
        """A stream with ``hls`` that is not started: ``folder`` is where its HLS files go."""
        with self.client() as c:
            r = c.post("/v1/streams", json={"name": name, "hls": hls})
            assert r.status_code == 201, r.text
        stream: dict[str, Any] = r.json()
        q = "" if hls.get("public") else f"?token={stream['whep_token']}"
        stream["embed"] = self.url + stream["embed_url"] + q
        stream["playlist"] = self.url + stream["hls_url"] + q
        stream["folder"] = self.workdir / "hls" / self.tenant_id / stream["id"]
        return stream

    def live_hls_stream(
        self, name: str, hls: dict[str, Any], timeout: float = 90
    ) -> dict[str, Any]:
        """Import the demo catalog, create a stream with ``hls``, put a supervisor on duty,
        start it, and wait until its playlist lists two segments."""
        with self.client() as c:
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
            q = "" if hls.get("public") else f"?token={stream['whep_token']}"
            stream["embed"] = self.url + stream["embed_url"] + q
            stream["playlist"] = self.url + stream["hls_url"] + q
            deadline = time.monotonic() + timeout
            while True:
                r = c.get(stream["playlist"])
                if r.status_code == 200 and r.text.count("#EXTINF:") >= 2:
                    return stream
                status = c.get(f"/v1/streams/{stream['id']}").json()["status"]
                assert status["state"] not in ("failed", "crashed"), status
                assert time.monotonic() < deadline, f"no playlist: {status} {r.status_code}"
                time.sleep(0.5)

    def stop_stream(self, stream_id: str) -> None:
        with self.client() as c:
            c.post(f"/v1/streams/{stream_id}/stop")
