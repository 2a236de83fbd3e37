"""Destinations and stream responses through a real ``avatarcast serve``.

OWASP API7:2023 (SSRF): names that do not resolve, private addresses, and the one exemption a
deployment may make (its own RTMP service, by name) as an operator sets it in the environment.
OWASP API3:2023 (Broken Object Property Level Authorization): no server paths in responses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from served import Served, serve

#: the one exemption (by name) the destination test needs; the stream test needs no setting
EXEMPT = {"AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["localhost"]'}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module: the tests write different rows and read only their own."""
    with serve(tmp_path_factory.mktemp("destinations"), EXEMPT) as s:
        yield s


def test_destination_hosts_checked_with_one_exempt_name_api7_2023(served: Served) -> None:
    """API7:2023: only ``localhost`` by name is exempt; its address, srt and names that do not
    resolve are refused with messages that name nothing found behind them."""
    s = served
    with s.client() as c:

        def create(url: str) -> tuple[int, str]:
            r = c.post("/v1/destinations", json={"name": url[:60], "url": url}, headers=s.auth())
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


def test_stream_responses_carry_no_server_paths_api3_2023(served: Served) -> None:
    """API3:2023: a recorded stream says that it records, never where on the server."""
    s = served
    with s.client() as c:
        r = c.post(
            "/v1/streams", json={"name": "night", "record": True}, headers=s.auth("operator")
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        bodies = [
            r.text,
            c.get(f"/v1/streams/{sid}", headers=s.auth()).text,
            c.get("/v1/streams", headers=s.auth()).text,
            c.get("/openapi.json").text,
        ]
        assert r.json()["status"]["recording"] is False  # not on air yet
    for body in bodies:
        assert "recording_dir" not in body
        assert str(s.root) not in body and "/recordings" not in body


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
