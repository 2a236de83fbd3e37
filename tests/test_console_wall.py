"""The console's wall and crash alert in Debian's chromium against a real ``avatarcast
serve``: a supervisor's mute silences the stream within 1 s, a said line reaches the
transcript, the kill stops it; a killed worker is an alert within 3 s. Each measures its own
latency beside Chromium's audio buffer, so this file runs after the parallel phase, alone
(``tests/conftest_xdist.py``); its own server and browser (``console_site``), streams ``one``
and ``two`` as seeded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from console_site import (
    Beats,
    _events_open,
    _live,
    _page,
    _playing,
)

if TYPE_CHECKING:
    from console_site import Server

pytest_plugins = ("console_site",)
pytestmark = pytest.mark.timeout(600)

# --- the wall ------------------------------------------------------------------------------


_AUDIO_ENERGY = """(sid) => new Promise(async (resolve) => {
    const v = document.querySelector(`.tile[data-stream="${sid}"] video`);
    let e = 0;
    (await v.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') e = r.totalAudioEnergy || 0;
    });
    resolve(e);
})"""


def _energy_rate(page: Any, sid: str, seconds: float = 1.0) -> float:
    first = page.evaluate(_AUDIO_ENERGY, sid)
    page.wait_for_timeout(seconds * 1000)
    return float(page.evaluate(_AUDIO_ENERGY, sid) - first)


def test_wall_mute_say_and_kill(server: Server, browser: Any) -> None:
    one, two = server.streams["one"], server.streams["two"]
    for sid in (one, two):
        _live(server, sid)
    page = _page(browser, server, "supervisor")
    assert page.url.endswith("/console/wall")
    with Beats(server, one), Beats(server, two):
        tile = page.locator(f'.tile[data-stream="{one}"]')
        _playing(page, f'.tile[data-stream="{one}"] video')
        tile.get_by_role("button", name="Solo audio").click()
        server.wait(lambda: _energy_rate(page, one) > 0, 20, "no audio energy before mute")
        tile.get_by_role("button", name="Mute", exact=True).click()
        expect(page.locator("#status")).to_contain_text("Muted", timeout=5000)
        muted = time.monotonic()
        energy = [(0.0, page.evaluate(_AUDIO_ENERGY, one))]
        while energy[-1][0] < 2.5:
            page.wait_for_timeout(100)
            energy.append((time.monotonic() - muted, page.evaluate(_AUDIO_ENERGY, one)))
        # the first moment from which the energy did not grow for half a second
        quiet = next(
            (
                t
                for i, (t, e) in enumerate(energy)
                if all(later - e < 1e-6 for s, later in energy[i:] if s - t <= 0.5)
                and energy[-1][0] - t >= 0.5
            ),
            None,
        )
        assert quiet is not None and quiet <= 1.0, energy
        tile.get_by_role("button", name="Unmute").click()

        text = "Quick correction from your host: delivery takes two days."
        tile.get_by_label("Say on one").fill(text)
        tile.get_by_role("button", name="Say", exact=True).click()

        def said() -> bool:
            r = server.call("GET", f"/v1/streams/{one}/transcript?source=supervisor")
            return any("delivery takes two days" in i["text"] for i in r.json()["items"])

        server.wait(said, 30, "the supervisor's line never reached the transcript")

        page.keyboard.press("1")  # focus tile 1, then k: kill after the confirmation
        page.keyboard.press("k")
        server.wait(lambda: server.status(one)["status"]["state"] == "stopped", 20, "not killed")
        note = page.locator(f'[data-video-note="{one}"]')
        expect(note).to_have_text("Stream ended", timeout=5000)
        expect(tile).to_have_attribute("data-state", "stopped")
    page.context.close()


def test_killed_worker_is_an_alert_and_restarts_rise(server: Server, browser: Any) -> None:
    one, two = server.streams["one"], server.streams["two"]
    if server.status(one)["desired_state"] != "stopped":  # one worker: the one to kill
        assert server.call("POST", f"/v1/streams/{one}/stop").status_code == 200
        server.wait(lambda: server.status(one)["status"]["state"] == "stopped", 30, "one runs")
    _live(server, two)
    server.wait(lambda: server.status(two)["status"]["state"] != "starting", 30, "not started")
    page = _page(browser, server, "operator")
    with page.expect_response(_events_open):  # the page's event stream is open (was a 1.5 s sleep)
        page.goto(f"{server.base}/console/streams/{two}")
    restarts = server.status(two)["status"]["restarts"]
    children = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(children) == 1, children  # the one stream worker still running
    os.kill(int(children[0]), signal.SIGKILL)
    killed = time.monotonic()
    alert = page.locator("#alerts")
    page.wait_for_function(
        "document.getElementById('alerts').textContent.includes('crashed')"
        " || document.getElementById('alerts').textContent.includes('restarted')",
        timeout=3000,
    )
    assert time.monotonic() - killed < 3.0
    assert alert.get_attribute("role") == "alert"
    server.wait(lambda: server.status(two)["status"]["restarts"] > restarts, 30, "no restart")
    cell = page.locator('[data-h="restarts"]').first
    server.wait(lambda: int(cell.inner_text()) > restarts, 5, "the page's restart count")
    page.context.close()
