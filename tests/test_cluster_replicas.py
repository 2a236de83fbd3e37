"""What API replicas on one PostgreSQL share. A key's rate limit: the bucket is a row that
every replica refills and takes from in one statement, so two replicas grant what one would.
The console's events: a tab on any replica sees what every replica publishes.
One served process plus the table taken from directly stands for two replicas: a second
``serve`` would double the test's cost and prove nothing more about the row."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from avatarcast.console.relay import CHANNEL, conninfo
from avatarcast.control.ratelimit_shared import SharedTokenBuckets
from avatarcast.control.security import split_token
from avatarcast.db import make_engine, upgrade_database
from pg_server import PgServer
from served import Served, seed, serve

pytest_plugins = ("conftest_api",)


@pytest.fixture
def engine(pg_server: PgServer) -> Iterator[Engine]:
    url = pg_server.create_database(f"limits_{secrets.token_hex(4)}")
    upgrade_database(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_a_shared_bucket_grants_its_burst_then_refills_at_its_rate(engine: Engine) -> None:
    buckets = SharedTokenBuckets(engine, rate=4.0, burst=2)
    assert [buckets.take("k1"), buckets.take("k1")] == [0.0, 0.0]
    wait = buckets.take("k1")
    assert 0.0 < wait <= 0.25 + 1e-6, wait
    assert buckets.take("k2") == 0.0  # another key has its own bucket
    time.sleep(wait + 0.05)
    assert buckets.take("k1") == 0.0
    assert buckets.take("k1") > 0.0
    buckets.forget("k1")  # a revoked key's bucket goes; a new one starts full
    assert buckets.take("k1") == 0.0


def test_concurrent_takes_grant_exactly_the_burst(engine: Engine) -> None:
    buckets = SharedTokenBuckets(engine, rate=0.001, burst=7)
    granted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def client() -> None:
        start.wait()
        for _ in range(5):
            ok = buckets.take("hot") == 0.0
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 20
    assert granted.count(True) == 7


def test_a_served_replica_shares_its_key_budget_and_console_events(
    pg_server: PgServer, engine: Engine, tmp_path: Path
) -> None:
    """``serve`` on PostgreSQL takes from the shared bucket (what another replica took, here
    the test through the same table, is gone for it too; per-process buckets would grant their
    own three), and a console tab on it gets the line spoken on a stream another replica runs
    (the other replica is the test again, sending the relay's notification itself)."""
    url = engine.url.render_as_string(hide_password=False)
    tenant_id, keys, _ = seed(url)
    env = {
        "AVATARCAST_DATABASE_URL": url,
        "AVATARCAST_SECRETS__SERVER_KEY": Fernet.generate_key().decode(),
        "AVATARCAST_API__RATE_LIMIT__RATE": "0.2",
        "AVATARCAST_API__RATE_LIMIT__BURST": "3",
    }
    auth = {"Authorization": f"Bearer {keys['operator']}"}
    other_replica = SharedTokenBuckets(engine, rate=0.2, burst=3)
    key_id = split_token(keys["operator"])
    assert key_id is not None
    with serve(tmp_path / "a", env, seeded=False) as a, a.client() as client:
        assert client.get("/v1/products", headers=auth).status_code == 200
        assert other_replica.take(key_id[0]) == 0.0
        assert client.get("/v1/products", headers=auth).status_code == 200
        refused = client.get("/v1/products", headers=auth)
        problem = a.problem(refused, 429)
        assert "requests per second for this key" in problem["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 6
        assert other_replica.take(key_id[0]) > 0.0
        # another key of the same tenant is not held back by it
        other = {"Authorization": f"Bearer {keys['backend']}"}
        assert client.get("/v1/products", headers=other).status_code == 200

        lines = console_lines_until(a, client, keys["supervisor"], url, tenant_id)
        event_at = next(i for i, x in enumerate(lines) if "Relayed" in x)
        assert lines[event_at - 1] == "event: line"
        data = json.loads(lines[event_at].removeprefix("data: "))
        assert data["stream_id"] == "s-elsewhere"


def console_lines_until(
    a: Served, client: httpx.Client, key: str, url: str, tenant_id: str
) -> list[str]:
    """Sign in, follow the console's events, and notify as another replica would until the
    tab shows the relayed line (at most 20 s)."""
    signed = client.post("/console/sign-in", data={"api_key": key}, headers={"Origin": a.url})
    assert signed.status_code == 303, signed.text
    note = {
        "o": "replica-elsewhere",
        "t": tenant_id,
        "s": "s-elsewhere",
        "n": "line",
        "d": {"kind": "line", "text": "Relayed: ninety-nine euro."},
    }
    deadline = time.monotonic() + 20
    lines: list[str] = []
    with (
        client.stream("GET", "/console/events", timeout=20) as events,
        psycopg.connect(conninfo(url), autocommit=True) as conn,
    ):
        for line in events.iter_lines():
            lines.append(line)
            if "Relayed: ninety-nine euro." in line:
                return lines
            assert time.monotonic() < deadline, f"no relayed line on the tab: {lines[-5:]}"
            if line.startswith("event: health") or len(lines) == 1:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(note)))
    raise AssertionError(f"the console's events ended: {lines[-5:]}")
