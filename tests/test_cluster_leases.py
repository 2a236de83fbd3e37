"""Several API processes on one PostgreSQL: the scheduler's leader and the streams' leases.

Real PostgreSQL, one engine per "process". The end-to-end failover with two ``serve``
processes is ``test_cluster_failover.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.control import create_key
from avatarcast.control.leader import Leadership
from avatarcast.control.leases import StreamLeases
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.base import utcnow
from avatarcast.db.migrate import current_revision, upgrade_database
from avatarcast.db.models_streams import StreamLease, StreamRow

pytest_plugins = ("conftest_api",)

from pg_server import PgServer  # noqa: E402


@pytest.fixture
def engines(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[list[Engine]]:
    url = pg_server.create_database(f"cluster_{request.node.name[:40]}", template="api_template")
    made = [make_engine(url), make_engine(url)]
    yield made
    for engine in made:
        engine.dispose()


def add_stream(sessions: sessionmaker[Session], stream_id: str, *, duty: bool = True) -> None:
    tenant_id, _ = create_key(sessions, tenant_name=f"t-{stream_id}", role="operator")
    with sessions() as s:
        s.add(
            StreamRow(
                id=stream_id,
                tenant_id=tenant_id,
                name=stream_id,
                avatar="default",
                voice="default",
                lang="en",
                writer="template",
                destination_ids=[],
                desired_state="live",
                whep_token="t",
                duty_supervisor_id="sup1" if duty else None,
            )
        )
        s.commit()


def backend_pids(pg: PgServer) -> list[int]:
    """The sessions holding an advisory lock."""
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        ).fetchall()
    return [int(r[0]) for r in rows]


async def test_one_leader_at_a_time_and_takeover_when_its_session_ends(
    engines: list[Engine], pg_server: PgServer
) -> None:
    a = Leadership(engines[0], replica="a")
    b = Leadership(engines[1], replica="b")
    assert await a.acquire() is True
    assert await b.acquire() is False
    assert await a.acquire() is True  # kept, not won again
    assert (a.leader, b.leader) == (True, False)
    # the server ends the leader's session (as when its process dies): the lock goes with it
    (pid,) = backend_pids(pg_server)
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert await b.acquire() is True
    assert await a.acquire() is False  # its connection is gone: no longer leading
    assert a.leader is False
    await b.release()
    assert backend_pids(pg_server) == []
    assert await a.acquire() is True
    await a.release()


def test_a_stream_lease_has_one_owner_and_expires(engines: list[Engine]) -> None:
    sa, sb = make_sessionmaker(engines[0]), make_sessionmaker(engines[1])
    add_stream(sa, "s1")
    add_stream(sa, "s2", duty=False)
    a = StreamLeases(sa, replica="a", ttl_s=30)
    b = StreamLeases(sb, replica="b", ttl_s=30)
    assert a.orphans() == ["s1"]  # on air, someone on duty, nobody holds it (s2: no duty)
    assert a.claim("s1") is None
    assert b.claim("s1") == "a"
    assert a.claim("s1") is None  # its own: renewed
    assert a.renew(["s1"]) == set() and a.orphans() == []
    # a stops renewing (its process died): once expired, b takes it over and a lost it
    with sa() as s:
        s.execute(update(StreamLease).values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    assert b.orphans() == ["s1"]
    assert b.claim("s1") is None
    assert a.renew(["s1"]) == {"s1"}
    assert a.claim("s1") == "b"
    # a stop set through another process: the owner reads it from owned()
    with sa() as s:
        s.execute(update(StreamRow).where(StreamRow.id == "s1").values(desired_state="stopped"))
        s.commit()
    assert b.owned() == {"s1": "stopped"} and a.owned() == {}
    b.release()
    with sa() as s:
        assert s.get(StreamLease, "s1") is None


def test_two_claims_at_once_one_wins(engines: list[Engine]) -> None:
    """Twenty rounds of both processes claiming one stream at the same instant, on a fresh
    row (the INSERT race) and on an expired one (the UPDATE race): always exactly one."""
    sa, sb = make_sessionmaker(engines[0]), make_sessionmaker(engines[1])
    add_stream(sa, "race")
    leases = [StreamLeases(sa, replica="a", ttl_s=30), StreamLeases(sb, replica="b", ttl_s=30)]
    for round_ in range(20):
        with sa() as s:
            if round_ % 2:
                s.execute(update(StreamLease).values(expires_at=utcnow() - timedelta(seconds=1)))
            else:
                s.query(StreamLease).delete()
            s.commit()
        barrier = threading.Barrier(2)
        results: list[str | None] = [None, None]
        threads = [
            threading.Thread(target=_claim, args=(barrier, leases[i], results, i)) for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        winners = [leases[i].replica for i in range(2) if results[i] is None]
        losers = [r for r in results if r is not None]
        assert len(winners) == 1 and losers == winners, (round_, results)
        with sa() as s:
            row = s.get(StreamLease, "race")
            assert row is not None and row.owner == winners[0]


def _claim(
    barrier: threading.Barrier, leases: StreamLeases, results: list[str | None], i: int
) -> None:
    barrier.wait()
    results[i] = leases.claim("race")


def test_sqlite_process_is_always_the_leader(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        lead = Leadership(engine, replica="solo")
        assert asyncio.run(lead.acquire()) is True and lead.leader is True
    finally:
        engine.dispose()


def test_replicas_starting_at_once_migrate_one_after_the_other(pg_server: PgServer) -> None:
    """Two API processes on a new database: both upgrades succeed (an advisory lock orders
    them; without it both create the same tables and one fails)."""
    url = pg_server.create_database(f"migrate_{secrets.token_hex(4)}")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def upgrade() -> None:
        barrier.wait()
        try:
            upgrade_database(url)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert current_revision(url) == current_revision(pg_server.url("api_template"))  # head
