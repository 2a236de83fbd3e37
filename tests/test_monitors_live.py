"""Acceptance of the on-air monitors through a real ``avatarcast serve``: a live stream with an
RTMP destination (nginx-rtmp) and a recording, glitches injected through the API
(``POST /v1/streams/{id}/faults``, on only with ``monitors.fault_injection``) or by stopping
the RTMP server, and each finding and the remedy naming it read back from
``GET /v1/streams/{id}/events``; the counters from ``/metrics``.

One stream takes the drills, so the server and the stream start once. Glitches that touch
different parts of the output are injected together, in two rounds (frozen picture, noise,
stalled recording; then black picture, mute, a writer loop, a destination down; the frozen
meter counts only while the voice is on, so the mute is not beside the freeze), each round
waiting for all its findings to clear; the lip-sync drift, which climbs its ladder to a worker
restart, comes last on its own. One after another they took 123 s of a live 720p encode. The
thresholds are the defaults except the times a test cannot wait for (warm-up, escalation,
output stall, lip-sync cadence).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rtmp_server import RtmpServer
from served import Served, live_stream, serve

ENV = {
    "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
    "AVATARCAST_MONITORS__FAULT_INJECTION": "true",
    # the drills take minutes; nobody sends heartbeats, and the slate would stop the talk
    "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "3600",
    "AVATARCAST_MONITORS__WARMUP_S": "4",
    "AVATARCAST_MONITORS__ESCALATE_AFTER_S": "7",
    # a slate (the black drill's second step, where it lasts) must not hold up the next drill
    "AVATARCAST_MONITORS__SLATE_HOLD_S": "1",
    "AVATARCAST_MONITORS__OUTPUT_STALL_S": "3",
    "AVATARCAST_MONITORS__LIPSYNC_EVERY_S": "3",
    "AVATARCAST_MONITORS__LIPSYNC_WINDOW_S": "5",
    # frames late on this shared machine are real, but not what these drills are about
    "AVATARCAST_MONITORS__LATE_S": "30",
}


@pytest.fixture(scope="module")
def rtmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtmpServer]:
    server = RtmpServer(tmp_path_factory.mktemp("nginx"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _events(c: httpx.Client, sid: str, kind: str, h: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"kind": kind, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = c.get(f"/v1/streams/{sid}/events", params=params, headers=h).json()
        out += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def _wait(
    c: httpx.Client,
    sid: str,
    h: dict[str, str],
    kind: str,
    match: Callable[[dict[str, Any]], bool],
    wait_s: float = 60.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for e in _events(c, sid, kind, h):
            if match(e["detail"]):
                return e["detail"]  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"no {kind} event matched within {wait_s} s")


#: a drill: the fault injected, the monitors one of which must find it, the remedies allowed
Drill = tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]


def _inject(c: httpx.Client, sid: str, h: dict[str, str], drills: list[Drill]) -> set[str]:
    """Inject every fault of ``drills`` at once (each touches its own part of the output);
    returns the findings seen before."""
    seen = {e["detail"]["finding"] for e in _events(c, sid, "glitch", h)}
    for fault, _, _ in drills:
        r = c.post(f"/v1/streams/{sid}/faults", json=fault, headers=h)
        assert r.status_code == 200, r.text
    return seen


def _found(
    c: httpx.Client, sid: str, h: dict[str, str], drills: list[Drill], seen: set[str]
) -> list[dict[str, Any]]:
    """For each drill, a new glitch of one of its monitors and a remedy naming it came back,
    and all cleared. Returns the glitches in the order of ``drills``."""
    glitches = []
    for _, monitors, actions in drills:

        def new(d: dict[str, Any], monitors: tuple[str, ...] = monitors) -> bool:
            return d["monitor"] in monitors and d["finding"] not in seen

        glitch = _wait(c, sid, h, "glitch", new)
        remedy = _wait(c, sid, h, "remedy", lambda d, g=glitch: d["finding"] == g["finding"])
        assert remedy["action"] in actions, remedy
        assert glitch["value"] is not None and glitch["threshold"] is not None
        glitches.append(glitch)
    for g in glitches:
        _wait(c, sid, h, "glitch_cleared", lambda d, g=g: d["finding"] == g["finding"], 90.0)
    return glitches


def _media_s(c: httpx.Client, sid: str, h: dict[str, str]) -> float:
    status = c.get(f"/v1/streams/{sid}", headers=h).json()["status"]
    return float(status.get("frames") or 0) / 25


def test_each_monitor_finds_its_glitch_and_the_remedy_names_it(
    tmp_path: Path, rtmp: RtmpServer
) -> None:
    with serve(tmp_path / "srv", ENV) as s, s.client() as c:
        _run(s, c, rtmp)


def _run(s: Served, c: httpx.Client, rtmp: RtmpServer) -> None:
    admin = s.auth()
    dest = c.post(
        "/v1/destinations", json={"name": "local", "url": rtmp.url("monitors")}, headers=admin
    )
    assert dest.status_code == 201, dest.text
    sid, h = live_stream(c, admin, destination_ids=[dest.json()["id"]], record=True)
    deadline = time.monotonic() + 60
    while _media_s(c, sid, h) < 8.0:  # past the warm-up (4 s), into the talk
        assert time.monotonic() < deadline, "the stream's media time did not reach 8 s"
        time.sleep(0.2)
    # the picture (frozen), the voice (noise) and the recording (stalled) at once: the frozen
    # meter counts only while the voice is on, so the mute goes with the black picture
    stall = {"kind": "stall_output", "seconds": 8, "target": "recording"}
    first: list[Drill] = [
        ({"kind": "freeze", "seconds": 6}, ("frozen",), ("reset_talk",)),
        ({"kind": "noise", "seconds": 4}, ("noise", "clipping"), ("revoice",)),
        (stall, ("recording_stalled",), ("restart_output",)),
    ]
    frozen, _, _ = _found(c, sid, h, first, _inject(c, sid, h, first))
    assert frozen["value"] >= frozen["threshold"] == 2.0
    # then the picture (black), the voice (mute), the writer (a loop) and a destination down
    second: list[Drill] = [
        ({"kind": "black", "seconds": 5}, ("black",), ("restart_encoder",)),
        ({"kind": "mute_voice", "seconds": 5}, ("silence",), ("revoice",)),
        ({"kind": "loop_writer", "seconds": 20}, ("repeat",), ("reset_talk",)),
    ]
    seen = _inject(c, sid, h, second)
    rtmp.stop()
    try:
        glitch = _wait(c, sid, h, "glitch", lambda d: d["monitor"] == "destination_down")
        remedy = _wait(c, sid, h, "remedy", lambda d: d["finding"] == glitch["finding"])
        assert remedy["action"] == "restart_output" and remedy["target"] == glitch["target"]
    finally:
        rtmp.start()
    _found(c, sid, h, second, seen)
    # sound behind the picture, long enough to climb the ladder to a worker restart
    r = c.post(f"/v1/streams/{sid}/faults", json={"kind": "drift", "seconds": 60}, headers=h)
    assert r.status_code == 200, r.text
    lag = _wait(c, sid, h, "glitch", lambda d: d["monitor"] == "lipsync", 90.0)
    assert lag["value"] >= 100.0
    last = _wait(
        c,
        sid,
        h,
        "remedy",
        lambda d: d["finding"] == lag["finding"] and d["action"] == "restart_worker",
        90.0,
    )
    assert last["monitor"] == "lipsync"
    restarted = [e for e in _events(c, sid, "restarted", h)]
    deadline = time.monotonic() + 60
    while not restarted:
        assert time.monotonic() < deadline, "the worker was not restarted in place"
        time.sleep(0.5)
        restarted = _events(c, sid, "restarted", h)
    while c.get(f"/v1/streams/{sid}", headers=h).json()["status"]["state"] != "live":
        assert time.monotonic() < deadline, "the restarted worker did not go live"
        time.sleep(0.3)
    # the same stream records on, into a new run folder
    runs = sorted(p.name for p in (s.root / "recordings").glob(f"*/{sid}/*") if p.is_dir())
    assert len(runs) == 2, runs
    metrics = c.get("/metrics").text
    for monitor in ("frozen", "silence", "black", "repeat", "recording_stalled", "lipsync"):
        assert f'avatarcast_stream_glitches_total{{monitor="{monitor}",stream="{sid}"}}' in metrics
    assert f'avatarcast_stream_remedies_total{{action="restart_output",stream="{sid}"}}' in metrics
