"""A real PostgreSQL stopped and started again under a real ``avatarcast serve`` with a stream
on air: requests that need the database get 503 with Retry-After (the soak's WHEP viewer got a
500), the stream stays on air, and the loss and the return of the database are events of the
stream and signed alerts to a webhook (the soak saw them only in ``/readyz``). A fast restart
(0.2 s, as in the soak) is seen as well: it cut the watch's own connection."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pg_server import PgServer
from served import Served, live_stream, serve
from webhook_receiver import Receiver

SECRET = "whsec-" + "d" * 26
ENV = {
    "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
    "AVATARCAST_API__DATABASE_CHECK_S": "0.2",
    "AVATARCAST_WEBHOOKS__POLL_S": "0.2",
    "AVATARCAST_WEBHOOKS__BACKOFF_START_S": "0.2",
}


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A PostgreSQL of this module's own: stopping it must not touch the session's."""
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


def _database_up(s: Served) -> float:
    with s.client() as c:
        text = c.get("/metrics").text
    match = re.search(r"^avatarcast_database_up (\S+)$", text, re.M)
    assert match, "no avatarcast_database_up in /metrics"
    return float(match.group(1))


def _wait(what: str, check: object, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.1)


def _database_alerts(receiver: Receiver) -> list[str]:
    """The states alerted so far, sorted (the two of an outage may be sent in parallel)."""
    return sorted(str(b["detail"]["state"]) for b in receiver.got if b["kind"] == "database")


def test_database_outage_answers_503_and_alerts(pg: PgServer, tmp_path: Path) -> None:
    url = pg.create_database("outage")
    with Receiver(SECRET) as receiver, serve(tmp_path / "serve", ENV, database_url=url) as s:
        with s.client("admin") as c:
            body = {"url": receiver.url, "secret": SECRET, "events": ["database"]}
            assert c.post("/v1/webhooks", json=body).status_code == 201
        with s.client("operator") as c:
            sid, me = live_stream(c, s.auth("operator"))
            c.headers.update(me)
            stream = c.get(f"/v1/streams/{sid}").json()
            frames_before = stream["status"]["frames"] or 0
            assert _database_up(s) == 1.0

            pg.halt()
            lost = time.monotonic()
            offer = c.post(
                f"/v1/streams/{sid}/whep",
                params={"token": stream["whep_token"]},
                content=b"v=0\r\n",
                headers={"Content-Type": "application/sdp"},
            )
            problem = s.problem(offer, 503)  # was a 500 in the soak
            assert problem["type"] == "/problems/database-unavailable"
            assert offer.headers["retry-after"] == "2" and problem["retry_after"] == 2
            time.sleep(2.5)  # past the key cache: the key itself must be looked up now
            s.problem(c.get("/v1/products"), 503)
            s.problem(c.get("/readyz"), 503)
            _wait("avatarcast_database_up 0", lambda: _database_up(s) == 0.0, 10)
            pg.resume()
            away_s = time.monotonic() - lost

            _wait("both alerts", lambda: _database_alerts(receiver) == ["down", "recovered"])
            assert not receiver.refused
            alerts = {b["detail"]["state"]: b for b in receiver.got if b["kind"] == "database"}
            down, back = alerts["down"], alerts["recovered"]
            assert down["stream_id"] == sid and "error" in down["detail"]
            assert 2.5 <= back["detail"]["down_s"] <= away_s + 1.0, (back, away_s)

            # the events list has them too: held while the database was away, written after by
            # the manager's job queue, which may run after the webhooks went (their own path)
            def written() -> list[str]:
                got = c.get(f"/v1/streams/{sid}/events", params={"kind": "database"}).json()
                return [e["detail"]["state"] for e in got["items"]]

            _wait("the held events written", lambda: written() == ["down", "recovered"], 10)
            assert _database_up(s) == 1.0
            # the stream never left the air: the same worker, still counting frames
            status = c.get(f"/v1/streams/{sid}").json()["status"]
            assert status["state"] == "live" and status["restarts"] == 0
            assert (status["frames"] or 0) > frames_before  # its frame counter moved on

            # a restart over in a fraction of a second is seen too: it cut the watch's connection
            pg.restart()
            _wait("the restart's alerts", lambda: len(_database_alerts(receiver)) == 4)
            assert _database_alerts(receiver) == ["down", "down", "recovered", "recovered"]
            c.post(f"/v1/streams/{sid}/stop")
        log = s.output()
    assert "unhandled error" not in log
    assert SECRET not in log


def test_only_errors_a_retry_can_help_count_as_an_outage() -> None:
    """Those become 503 (``problems._database_error``); a broken query stays a logged 500."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from avatarcast.db.engine import unreachable

    assert unreachable(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert not unreachable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    locked = sqlite3.OperationalError("database is locked")
    assert unreachable(OperationalError("INSERT", {}, locked))
    missing = sqlite3.OperationalError("no such table: no_such_table")
    assert not unreachable(OperationalError("SELECT", {}, missing))  # a bug, not an outage
    assert not unreachable(httpx.ConnectError("not a database error"))


def test_closing_the_watch_waits_for_a_check_under_way(tmp_path: Path) -> None:
    """The app's shutdown cancels the watch while a check may still run in its thread; the
    close waits for it instead of closing the connection under it (a SQLite SIGSEGV)."""
    import threading

    from sqlalchemy import event
    from sqlalchemy.pool import NullPool

    from avatarcast.control.dbwatch import DatabaseWatch
    from avatarcast.db.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}", poolclass=NullPool)
    inside, release = threading.Event(), threading.Event()

    @event.listens_for(engine, "before_cursor_execute")
    def slow(*_args: object) -> None:
        inside.set()
        release.wait(5)

    watch = DatabaseWatch(engine, on_change=lambda up, detail: None)
    results: list[tuple[bool, str | None]] = []
    checker = threading.Thread(target=lambda: results.append(watch.check()))
    checker.start()
    assert inside.wait(5)
    closer = threading.Thread(target=watch.close)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive()  # waits for the check under way
    release.set()
    checker.join(5)
    closer.join(5)
    assert not closer.is_alive() and results == [(True, None)]
    assert watch.check() == (True, None)  # closed: no new connection, the last state
