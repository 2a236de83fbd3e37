"""Regenerate the console's screenshots (1440x900) in docs/ from a fresh demo server.

    .venv/bin/python scripts/screenshots.py [--out docs/console]

Starts ``avatarcast demo`` on a free loopback port with a throwaway database, adds a night
shift and a viewer question, signs in with the printed key (a second, supervisor key for the
wall when the demo key cannot take duty), and photographs each page with Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_demo(tmp: Path, port: int) -> tuple[subprocess.Popen[str], str, str]:
    env = {
        **os.environ,
        "AVATARCAST_DATABASE_URL": f"sqlite:///{tmp / 'demo.db'}",
        "AVATARCAST_RECORDINGS_DIR": str(tmp / "recordings"),
        "AVATARCAST_API__PORT": str(port),
    }
    cmd = [sys.executable, "-m", "avatarcast.cli", "demo"]
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    key = stream = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (key and stream):
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"(avk_[A-Za-z0-9_-]+)", line):
            key = m.group(1)
        if m := re.search(r"stream ([0-9a-f]{16})", line):
            stream = m.group(1)
    if not key or not stream:
        proc.kill()
        raise SystemExit("the demo did not print its key and stream")
    return proc, key, stream


def supervisor_key(base: str, key: str) -> str:
    """The demo key when it is linked to a supervisor, else a new supervisor key."""
    auth = {"Authorization": f"Bearer {key}"}
    keys = httpx.get(f"{base}/v1/keys", headers=auth).json()
    items: list[dict[str, Any]] = keys if isinstance(keys, list) else keys.get("items", [])
    key_id = key.split("_")[1]
    if any(k.get("id") == key_id and k.get("supervisor_id") for k in items):
        return key
    body = {"full_name": "Night Supervisor", "contact": "+31 20 555 0100", "reference": "S-1"}
    sid = httpx.post(f"{base}/v1/supervisors", json=body, headers=auth).json()["id"]
    made = {"name": "wall", "role": "supervisor", "supervisor_id": sid}
    return str(httpx.post(f"{base}/v1/keys", json=made, headers=auth).json()["key"])


def seed(base: str, key: str, stream: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    shift = {
        "name": "Night shift",
        "stream_id": stream,
        "timezone": "Europe/Amsterdam",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "22:00",
        "end": "06:00",
    }
    httpx.post(f"{base}/v1/schedules", json=shift, headers=auth)


def sign_in(page: Page, base: str, key: str, shot: Path | None = None) -> None:
    page.goto(f"{base}/console/sign-in")
    page.get_by_label("API key").fill(key)
    if shot is not None:
        page.screenshot(path=str(shot))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("domcontentloaded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="shots-") as tmp:
        proc, key, stream = start_demo(Path(tmp), port)
        try:
            seed(base, key, stream)
            wall_key = supervisor_key(base, key)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                page = context.new_page()
                sign_in(page, base, key, out / "sign-in.png")
                page.goto(f"{base}/console/streams")
                page.wait_for_timeout(2500)
                page.screenshot(path=str(out / "streams.png"))
                if wall_key != key:
                    page.get_by_role("button", name="Sign out").click()
                    sign_in(page, base, wall_key)
                page.goto(f"{base}/console/wall")
                take = page.get_by_role("button", name="Take duty")
                if take.count():
                    take.first.click()
                page.wait_for_function(
                    "document.querySelector('video.preview')?.videoWidth > 0", timeout=60_000
                )
                page.wait_for_timeout(3000)
                page.screenshot(path=str(out / "wall.png"))
                page.goto(f"{base}/console/streams/{stream}")
                page.wait_for_function(
                    "document.querySelector('video.preview')?.videoWidth > 0", timeout=60_000
                )
                page.wait_for_timeout(4000)
                page.screenshot(path=str(out / "stream.png"))
                page.goto(f"{base}/console/schedules")
                page.screenshot(path=str(out / "schedules.png"))
                page.goto(f"{base}/console/audit")
                page.screenshot(path=str(out / "audit.png"))
                browser.close()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
