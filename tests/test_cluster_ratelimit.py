"""A key's rate limit holds across API processes on one PostgreSQL: the bucket is a row that
every replica refills and takes from in one statement, so two replicas grant what one would.
One served process plus the table taken from directly stands for two replicas: a second
``serve`` would double the test's cost and prove nothing more about the row."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from avatarcast.control.ratelimit_shared import SharedTokenBuckets
from avatarcast.control.security import split_token
from avatarcast.db import make_engine, upgrade_database
from pg_server import PgServer
from served import seed, serve

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


def test_a_served_replica_takes_from_the_shared_bucket(
    pg_server: PgServer, engine: Engine, tmp_path: Path
) -> None:
    """``serve`` on PostgreSQL uses the shared bucket: what another replica (here the test,
    through the same table) took is gone for it too. With per-process buckets it would grant
    its own three."""
    url = engine.url.render_as_string(hide_password=False)
    _, keys, _ = seed(url)
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
