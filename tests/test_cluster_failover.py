"""Two real ``avatarcast serve`` processes on one real PostgreSQL, a night shift on a shifted
clock: the scheduler's leader is killed (SIGKILL) while a window is open, the other process
takes over leadership and the leader's stream, closes that window and opens the next, and no
window opens twice and no stream runs twice.

The scheduler's clock is moved with ``scheduler.clock_offset_s`` so the window is "tonight"
while the test runs; ticks are 0.5 s and leases last 3 s to keep the test short. The offset
also puts the fake clock ~10 s into a minute once a leader is elected, and the test adds the
first window ``ADD_AT_S`` (28 s) into that minute (windows are whole minutes, and one must stay
open ``OPEN_S``, 30 s): its streams run 32 s until it closes, and the test ends ~55 s after the
servers' start, not up to 105 s after as with an offset of whole days.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.base import utcnow
from avatarcast.db.models import Event, ProductRow, Tenant
from avatarcast.db.models_streams import ScheduleRow, ScheduleRun, StreamLease, StreamRow
from pg_server import PgServer
from served import seed, serve

pytest_plugins = ("conftest_api",)

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
TICK_S, LEASE_S = 0.5, 3.0
#: the fake clock: a night in the future, so the run cannot meet a real window
NIGHT = timedelta(days=3, hours=7)
#: the least time the first window stays open once added: what the test does before it
#: closes (the stream started, 2 x LEASE_S of renewals, pause and resume, the kill, the
#: takeover, the second window) took 16 s on a loaded box (a soak beside it, 12/2026)
OPEN_S = 30
#: the first window is added this far into a fake minute, waiting for it idle (the window
#: ends with the minute however early it is added; the streams run from its start)
ADD_AT_S = 60 - OPEN_S - 2
#: seconds from the servers' start to the election (the test prints it: 3-22 s with a soak
#: beside it): elected 4-22 s after the start, the fake clock is 10-28 s into a minute and
#: the window is added in that minute; later, in the next one
ELECTION_S = 4.0


def night_offset(now: datetime) -> timedelta:
    """``NIGHT``, moved so that ``now + ELECTION_S`` is ``60 - OPEN_S - 20`` s into a minute
    on the fake clock."""
    at = now + NIGHT + timedelta(seconds=ELECTION_S - (60 - OPEN_S - 20))
    past = timedelta(seconds=at.second, microseconds=at.microsecond)
    return NIGHT + (timedelta(minutes=1) - past if past else timedelta(0))


def at_second(fake_now: Callable[[], datetime], second: float) -> None:
    """Sleep until ``fake_now()`` is ``second`` s into a minute (this one or the next)."""
    now = fake_now()
    time.sleep((second - now.second - now.microsecond / 1e6) % 60)


@pytest.fixture
def db(
    pg_server: PgServer,
) -> Iterator[tuple[str, sessionmaker[Session], dict[str, str]]]:
    url = pg_server.create_database(f"failover_{secrets.token_hex(4)}")
    _, keys, _ = seed(url)
    engine = make_engine(url)
    yield url, make_sessionmaker(engine), keys
    engine.dispose()


def until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(every)
    return value


def add_stream(sessions: sessionmaker[Session], name: str) -> tuple[str, str]:
    with sessions() as s:
        tenant_id = s.scalars(select(Tenant.id).where(Tenant.name == "acme")).one()
        if not s.scalar(select(ProductRow.pk).where(ProductRow.tenant_id == tenant_id)):
            s.add(ProductRow(tenant_id=tenant_id, product_id="AF-1", payload=FRYER))
        row = StreamRow(
            id=secrets.token_hex(8),
            tenant_id=tenant_id,
            name=name,
            avatar="default",
            voice="default",
            lang="en",
            writer="template",
            destination_ids=[],
            whep_token=secrets.token_urlsafe(24),
            desired_state="stopped",
            duty_supervisor_id="on-duty",  # a window opens only with someone on duty
            heartbeat_at=utcnow(),
        )
        s.add(row)
        s.commit()
        return row.id, tenant_id


def add_window(
    sessions: sessionmaker[Session], stream_id: str, tenant_id: str, start: datetime
) -> datetime:
    """A window every day from ``start``'s minute (UTC) that stays open ``OPEN_S`` or more after
    ``start``; returns its end."""
    begin = start.replace(second=0, microsecond=0)
    end = begin + timedelta(minutes=1 if start.second < 60 - OPEN_S else 2)
    with sessions() as s:
        s.add(
            ScheduleRow(
                id=secrets.token_hex(8),
                tenant_id=tenant_id,
                stream_id=stream_id,
                name=f"night-{stream_id}",
                timezone="UTC",
                days=list(range(7)),
                start_time=begin.strftime("%H:%M"),
                end_time=end.strftime("%H:%M"),
                enabled=True,
            )
        )
        s.commit()
    return end


def events(sessions: sessionmaker[Session], kind: str, stream_id: str) -> list[Event]:
    with sessions() as s:
        query = select(Event).where(Event.kind == kind, Event.stream_id == stream_id)
        return list(s.scalars(query.order_by(Event.id)))


def role(c: httpx.Client) -> str | None:
    """The scheduler's role of the server of ``c`` (one client per server: the polls are 10
    a second, and a new client is ~20 ms of CPU, its SSL context)."""
    body: dict[str, Any] = c.get("/readyz").json()
    return body.get("scheduler")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


def test_leader_killed_in_a_night_window_the_other_takes_over(
    db: tuple[str, sessionmaker[Session], dict[str, str]], tmp_path: Path
) -> None:
    url, sessions, keys = db
    night = night_offset(datetime.now(UTC))
    offset = night.total_seconds()
    env = {
        "AVATARCAST_DATABASE_URL": url,
        "AVATARCAST_SECRETS__SERVER_KEY": Fernet.generate_key().decode(),
        "AVATARCAST_SCHEDULER__CLOCK_OFFSET_S": str(offset),
        "AVATARCAST_SCHEDULER__TICK_S": str(TICK_S),
        "AVATARCAST_SCHEDULER__LEASE_TTL_S": str(LEASE_S),
    }

    def fake_now() -> datetime:
        return datetime.now(UTC) + night

    first, tenant_id = add_stream(sessions, "first")
    second, _ = add_stream(sessions, "second")
    began = time.monotonic()
    with ExitStack() as stack:
        a = stack.enter_context(serve(tmp_path / "a", env, seeded=False))
        b = stack.enter_context(serve(tmp_path / "b", env, seeded=False))
        ca, cb = (stack.enter_context(x.client()) for x in (a, b))
        until(lambda: {role(ca), role(cb)} == {"leader", "follower"}, 20, "no leader elected")
        elected_s = time.monotonic() - began
        leader, follower = (a, b) if role(ca) == "leader" else (b, a)
        lc, fc = (ca, cb) if leader is a else (cb, ca)

        # the first window began ADD_AT_S ago on the fake clock: the leader opens it
        at_second(fake_now, ADD_AT_S)
        opened = time.monotonic()
        ends = add_window(sessions, first, tenant_id, fake_now())
        started = until(lambda: events(sessions, "started", first), 30, "first not started")
        with sessions() as s:
            lease = s.get(StreamLease, first)
            assert lease is not None and lease.owner == role_replica(lc)
        time.sleep(2 * LEASE_S)  # leases renewed: the follower must not take the stream
        assert len(events(sessions, "started", first)) == 1
        # a pause and a resume through the follower reach the worker on the leader
        op = {"Authorization": f"Bearer {keys['operator']}"}
        for action, state in (("pause", "paused"), ("resume", "live")):
            assert fc.post(f"/v1/streams/{first}/{action}", headers=op).status_code == 200

            def reached(state: str = state) -> bool:
                body = lc.get(f"/v1/streams/{first}", headers=op).json()
                return bool(body["status"]["state"] == state)

            until(reached, LEASE_S + 10, f"{action} through the follower did not arrive")

        leader.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.proc.wait(10)
        until(lambda: role(fc) == "leader", 10, "the follower did not take over")
        took_over_s = time.monotonic() - killed
        assert took_over_s < 4 * TICK_S + 2, took_over_s  # a tick or two (+ a loaded box)

        # the dead leader's worker ends with it (end of stdin), then the lease runs out and
        # the new leader starts the stream: never two at once
        old_pid = int(started[0].detail["pid"])
        until(lambda: gone(old_pid), 15, "the dead leader's worker kept running")
        restarted = until(
            lambda: events(sessions, "started", first)[1:], LEASE_S + 20, "first not taken over"
        )
        restarted_s = time.monotonic() - killed
        assert restarted[0].time > started[0].time

        # a window opening after the kill is the new leader's
        add_window(sessions, second, tenant_id, fake_now())
        until(lambda: events(sessions, "started", second), 30, "second not started")

        # the first window closes on the fake clock: once, by the new leader (asked twice a
        # second: the longest wait of the test, 20-30 s)
        wait_s = (ends - fake_now()).total_seconds() + 15
        until(
            lambda: events(sessions, "schedule-stop", first),
            wait_s,
            "first did not close",
            every=0.5,
        )
        closed_s = time.monotonic() - opened
        until(lambda: events(sessions, "stopped", first), 20, "first did not stop")
        with sessions() as s:
            runs = list(s.scalars(select(ScheduleRun)))
        assert len(runs) == 2 and len({(r.schedule_id, r.window_key) for r in runs}) == 2
        for sid in (first, second):
            assert len(events(sessions, "schedule-start", sid)) == 1
        assert len(events(sessions, "schedule-stop", first)) == 1
        assert len(events(sessions, "started", first)) == 2  # the leader's, the takeover
        assert len(events(sessions, "started", second)) == 1
        assert "is now the leader" in follower.output()
        print(
            f"\nfailover: elected after {elected_s:.1f} s, window closed {closed_s:.1f} s after"
            f" it opened; leader in {took_over_s:.2f} s, stream in {restarted_s:.2f} s"
        )


def role_replica(c: httpx.Client) -> str:
    return str(c.get("/readyz").json()["replica"])
