"""A graceful end for ``serve`` (issue 15): systemd's notifications over a real datagram
socket, SIGTERM drains (``/readyz`` 503 while it does, recordings closed and playable), and
the next start brings the stream back on air."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from avatarcast.control import sdnotify
from media_probe import ffprobe, stream_of
from served import live_stream, serve

#: ``serve`` getting ready: a wait, not a check (60 s ran out at load average 26-34)
READY_S = 120.0


class NotifySocket:
    """What systemd listens on: a datagram socket at ``path``; ``messages`` as received."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, m in self.messages for line in m.splitlines()]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


def _wait(ok: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_notify_is_a_no_op_outside_systemd(tmp_path: Path) -> None:
    assert not sdnotify.notify("READY=1", env={})
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"}) is None
    listener = NotifySocket(tmp_path / "n.sock")
    try:
        assert sdnotify.notify("STATUS=x", env={"NOTIFY_SOCKET": str(listener.path)})
        _wait(lambda: listener.lines() != [], 5, "no notification")
        time.sleep(0.1)  # and nothing more
        assert listener.lines() == ["STATUS=x"]
    finally:
        listener.close()


def test_sigterm_drains_then_the_next_start_resumes(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "400000",
        "AVATARCAST_LIFECYCLE__DRAIN_NOTICE_S": "1.5",
        # no heartbeats are sent: a lapse (60 s by default) is safe mode, not "live"
        "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "900",
        "AVATARCAST_SUPERVISION__STOP_AFTER_S": "1800",
    }
    root = tmp_path / "srv"
    try:
        with serve(root, env, wait_s=READY_S) as s:
            assert "READY=1" in notify.lines()
            time.sleep(1.0)
            assert notify.lines().count("WATCHDOG=1") >= 3  # every 0.2 s, from the event loop
            with s.client("operator") as c:
                sid, me = live_stream(c, s.auth("operator"), record=True)
                c.headers.update(me)

                def recorded() -> bool:  # a second and a half before the SIGTERM
                    return int(c.get(f"/v1/streams/{sid}").json()["status"]["frames"] or 0) >= 38

                _wait(recorded, 30, "no frames")
            s.proc.send_signal(signal.SIGTERM)
            draining = None
            with httpx.Client(base_url=s.url, timeout=2, trust_env=False) as c:
                deadline = time.monotonic() + 5
                while draining is None and time.monotonic() < deadline:
                    r = c.get("/readyz")
                    if r.status_code == 503:
                        draining = r.json()
                    time.sleep(0.05)
            assert draining is not None and "draining" in draining["detail"], draining
            assert s.proc.wait(60) == 0
            assert "STOPPING=1" in notify.lines()
            log = s.output()
            assert "draining: 1 streams stop" in log and "drained" in log
        folder = root / "recordings" / s.tenant_id / sid
        run = next(p for p in folder.iterdir() if p.is_dir())
        index = json.loads((run / "index.json").read_text())
        assert [seg["file"] for seg in index["segments"]] == ["segment-00001.mp4"]
        info = ffprobe(run / "segment-00001.mp4")
        assert stream_of(info, "video")["codec_name"] == "h264" and stream_of(info, "audio")
        assert float(info["format"]["duration"]) >= 1.0  # what went out before the SIGTERM
        assert abs(float(info["format"]["duration"]) - index["segments"][0]["duration"]) < 0.2
        with serve(root, env, seeded=False, wait_s=READY_S) as again, again.client() as c:
            c.headers.update(me)
            deadline = time.monotonic() + 90
            while (status := c.get(f"/v1/streams/{sid}").json()["status"])["state"] != "live":
                assert time.monotonic() < deadline, status
                time.sleep(0.3)
            events = c.get(f"/v1/streams/{sid}/events").json()["items"]
            stops = [e["detail"].get("reason") for e in events if e["kind"] == "stopped"]
            assert stops == ["shutdown"]
            assert [e["kind"] for e in events].count("started") == 2
    finally:
        notify.close()
