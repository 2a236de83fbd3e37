"""Disk full, for real: the recordings folder is a 64 MiB tmpfs (mounted in a user and mount
namespace of the server's own, ``unshare -rm``, so no root is needed on the host), filled
until the kernel answers ENOSPC. The stream stays on air, the recording stops with an event
and a signed webhook alert, the database stays whole; space back, the recording resumes in a
new segment that plays."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import time
from pathlib import Path

from media_probe import ffprobe, stream_of
from served import live_stream, serve
from webhook_receiver import Receiver

#: ``serve`` getting ready: a wait, not a check (60 s ran out at load average 26-34)
READY_S = 120.0

SECRET = "disk-full-secret-0123456789"
MOUNT = 'mount -t tmpfs -o size=64m,mode=0755 tmpfs "$0" && exec "$@"'


def _fill(path: Path) -> int:
    """Write zeros into ``path`` until the file system is full; bytes written."""
    written = 0
    block = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                written += f.write(block)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        small = b"\0" * 4096
        try:
            while True:
                written += f.write(small)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return written


def _wait(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_disk_full_stops_the_recording_not_the_stream(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is required"
    recordings = tmp_path / "srv" / "recordings"
    recordings.mkdir(parents=True)
    wrap = (unshare, "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT, str(recordings))
    env = {
        "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
        "AVATARCAST_WEBHOOKS__POLL_S": "0.2",
        # no heartbeats are sent: a lapse (60 s by default) would put it in safe mode on a
        # loaded machine, and the state checked below would not be "live"
        "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "900",
        "AVATARCAST_SUPERVISION__STOP_AFTER_S": "1800",
        # quick to call a recording stalled and to climb its ladder to a worker restart: a
        # recording its guard stopped must not be called stalled (the soak found it restarted)
        "AVATARCAST_MONITORS__OUTPUT_STALL_S": "3",
        "AVATARCAST_MONITORS__ESCALATE_AFTER_S": "0.5",
    }
    with Receiver(SECRET) as receiver, serve(tmp_path / "srv", env, wrap=wrap, wait_s=READY_S) as s:
        inside = Path(f"/proc/{s.proc.pid}/root") / str(recordings).lstrip("/")
        assert os.statvfs(inside).f_blocks * os.statvfs(inside).f_frsize <= 64 << 20
        events = ["recording_stopped", "recording_resumed"]
        with s.client("admin") as c:
            body = {"url": receiver.url, "secret": SECRET, "events": events}
            assert c.post("/v1/webhooks", json=body).status_code == 201
        with s.client("operator") as c:
            sid, me = live_stream(c, s.auth("operator"), record=True)
            c.headers.update(me)

            def frames() -> int:
                return int(c.get(f"/v1/streams/{sid}").json()["status"]["frames"] or 0)

            _wait(lambda: frames() >= 25, 30, "no frames")  # a second recorded
            filler = inside / "filler.bin"
            print(f"filled {_fill(filler) >> 20} MiB")
            stopped = receiver.wait_for("recording_stopped", timeout=30)
            assert stopped["stream_id"] == sid and stopped["detail"]["errno"] == "ENOSPC"
            stopped_at, since = frames(), time.monotonic()
            # on air, and past the stall threshold and two steps of its ladder
            _wait(
                lambda: frames() >= stopped_at + 25 and time.monotonic() - since >= 8,
                30,
                "the stream stopped too",
            )
            status = c.get(f"/v1/streams/{sid}").json()["status"]
            assert status["state"] == "live" and status["restarts"] == 0, status
            assert status["recording"] is False, status
            run = next(p for p in inside.glob(f"{s.tenant_id}/{sid}/*-0") if p.is_dir())
            before = sorted(p.name for p in run.glob("segment-*.mp4"))
            filler.unlink()  # space back
            resumed = receiver.wait_for("recording_resumed", timeout=30)
            assert resumed["detail"]["free_bytes"] >= 32 << 20
            _wait(lambda: len(list(run.glob("segment-*.mp4"))) > len(before), 10, "no segment")
            new_at = frames()
            _wait(lambda: frames() >= new_at + 63, 30, "no frames")  # 2.5 s into the new segment
            status = c.get(f"/v1/streams/{sid}").json()["status"]
            assert status["state"] == "live" and status["recording"] is True, status
            kinds = [e["kind"] for e in c.get(f"/v1/streams/{sid}/events").json()["items"]]
            assert kinds.count("recording_stopped") == 1 and "recording_resumed" in kinds
            assert "crashed" not in kinds and "restarted" not in kinds, kinds
            glitches = c.get(f"/v1/streams/{sid}/events", params={"kind": "glitch"}).json()
            assert not [
                g for g in glitches["items"] if g["detail"]["monitor"] == "recording_stalled"
            ]
            newest = sorted(run.glob("segment-*.mp4"))[-1]
            assert newest.name not in before
            info = ffprobe(newest)
            video = stream_of(info, "video")
            assert float(info["format"]["duration"]) >= 2 and video["codec_name"] == "h264"
            for old in before:  # the segment cut by the full disk plays up to where it was cut
                ffprobe(run / old)
            c.post(f"/v1/streams/{sid}/stop")
        assert not receiver.refused
    db = sqlite3.connect(tmp_path / "srv" / "var" / "avatarcast.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT kind FROM events WHERE kind LIKE 'recording_%'").fetchall()
        assert sorted(r[0] for r in rows) == ["recording_resumed", "recording_stopped"]
    finally:
        db.close()
