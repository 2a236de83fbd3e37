"""Destinations and stream responses through a real ``avatarcast serve``.

OWASP API7:2023 (SSRF): names that do not resolve, private addresses, and the one exemption a
deployment may make (its own RTMP service, by name) as an operator sets it in the environment.
OWASP API3:2023 (Broken Object Property Level Authorization): no server paths in responses.
"""

from __future__ import annotations

from pathlib import Path

from serve_process import serve


def test_destination_hosts_checked_with_one_exempt_name_api7_2023(tmp_path: Path) -> None:
    """API7:2023: only ``localhost`` by name is exempt; its address, srt and names that do not
    resolve are refused with messages that name nothing found behind them."""
    env = {"AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["localhost"]'}
    with serve(tmp_path, env=env) as s:

        def create(url: str) -> tuple[int, str]:
            r = s.client.post(
                "/v1/destinations", json={"name": url[:60], "url": url}, headers=s.auth()
            )
            detail = r.json()["errors"][0]["message"] if r.status_code == 422 else ""
            return r.status_code, detail

        assert create("rtmp://localhost:1935/live") == (201, "")
        assert create("rtmps://8.8.8.8/app") == (201, "")
        private = "is not a public address (private, loopback, link-local or reserved addresses"
        for url in (
            "rtmp://127.0.0.1:1935/live",
            "rtmp://[::1]:1935/live",
            "rtmp://169.254.169.254/latest",
            "rtmp://10.1.2.3:22/x",
            "rtmp://[::ffff:10.1.2.3]/x",
            "rtmp://db.internal/x",
        ):
            status, detail = create(url)
            assert status == 422 and private in detail, (url, detail)
        assert create("rtmp://no-such-host.invalid/live") == (
            422,
            "host 'no-such-host.invalid' does not resolve",
        )
        status, detail = create("srt://8.8.8.8:9000?streamid=x")
        assert status == 422 and "srt destinations are not supported yet" in detail


def test_stream_responses_carry_no_server_paths_api3_2023(tmp_path: Path) -> None:
    """API3:2023: a recorded stream says that it records, never where on the server."""
    with serve(tmp_path) as s:
        r = s.client.post(
            "/v1/streams", json={"name": "night", "record": True}, headers=s.auth("operator")
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        bodies = [
            r.text,
            s.client.get(f"/v1/streams/{sid}", headers=s.auth()).text,
            s.client.get("/v1/streams", headers=s.auth()).text,
            s.client.get("/openapi.json").text,
        ]
        assert r.json()["status"]["recording"] is False  # not on air yet
    for body in bodies:
        assert "recording_dir" not in body
        assert str(tmp_path) not in body and "/recordings" not in body


def test_error_texts_lose_server_paths_api3_2023() -> None:
    """API3:2023: a worker's error naming a file keeps its sense, not the server's layout."""
    from avatarcast.control.streaming import without_paths

    assert without_paths("cannot open /srv/recordings/t1/s1/segment-3.mp4: denied") == (
        "cannot open <server path>: denied"
    )
    assert without_paths("No such file: '/var/lib/x.db'") == "No such file: '<server path>'"
    kept = "rtmp://8.8.8.8/live/**** refused: ConnectionRefusedError, ratio 1/2"
    assert without_paths(kept) == kept
    assert without_paths(None) is None
