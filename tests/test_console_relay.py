"""The console's events across replicas: two buses, each with its relay, on one real
PostgreSQL. What one replica publishes appears on the other's bus once, is never echoed back,
and still arrives after the database dropped the relay's connections."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from avatarcast.console.bus import EventBus
from avatarcast.console.relay import MAX_PAYLOAD, ConsoleRelay, conninfo
from pg_server import PgServer

pytest_plugins = ("conftest_api",)


@pytest.fixture
def url(pg_server: PgServer) -> Iterator[str]:
    yield pg_server.create_database(f"relay_{secrets.token_hex(4)}")


async def until_events(bus: EventBus, count: int) -> None:
    async with asyncio.timeout(10):
        while len(bus.after("acme", 0)) < count:  # noqa: ASYNC110 (polls another replica)
            await asyncio.sleep(0.02)


async def started(bus: EventBus, url: str, origin: str) -> tuple[ConsoleRelay, asyncio.Task[None]]:
    bus.bind(asyncio.get_running_loop())
    relay = ConsoleRelay(bus, database_url=url, origin=origin)
    bus.forward_to(relay.forward)
    ready = asyncio.Event()
    task = asyncio.create_task(relay.run(ready))
    await asyncio.wait_for(ready.wait(), 10)
    return relay, task


def test_an_event_reaches_the_other_replica_once(url: str) -> None:
    async def scenario() -> None:
        a, b = EventBus(), EventBus()
        _, task_a = await started(a, url, "replica-a")
        _, task_b = await started(b, url, "replica-b")
        try:
            a.publish("acme", "s1", "line", {"kind": "line", "text": "Ninety-nine euro."})
            await until_events(b, 1)
            (got,) = b.after("acme", 0)
            assert (got.tenant_id, got.stream_id, got.name) == ("acme", "s1", "line")
            assert got.data == {"kind": "line", "text": "Ninety-nine euro."}
            # too big for one notification: the kind goes, marked as cut
            a.publish("acme", "s1", "answers", {"kind": "answers", "items": ["x" * MAX_PAYLOAD]})
            await until_events(b, 2)
            assert b.after("acme", 1)[0].data == {"kind": "answers", "truncated": True}
            await asyncio.sleep(0.3)  # a relayed event is not sent on: nothing comes back
            assert len(a.after("acme", 0)) == 2
            assert len(b.after("acme", 0)) == 2
        finally:
            task_a.cancel()
            task_b.cancel()

    asyncio.run(scenario())


def test_the_relay_reconnects_after_the_database_drops_it(url: str) -> None:
    async def scenario() -> None:
        a, b = EventBus(), EventBus()
        _, task_a = await started(a, url, "replica-a")
        _, task_b = await started(b, url, "replica-b")
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo(url), autocommit=True
            ) as admin:
                cur = await admin.execute(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM"
                    " pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()) AS t"
                )
                row = await cur.fetchone()
                assert row is not None and row[0] == 4  # two relays, two connections each
            # both relays come back (backoff 0.5 s) and listen again
            async with asyncio.timeout(10):
                while True:
                    a.publish("acme", "s2", "event", {"kind": "muted"})
                    await asyncio.sleep(0.3)
                    if b.after("acme", 0):
                        break
            assert b.after("acme", 0)[0].data == {"kind": "muted"}
        finally:
            task_a.cancel()
            task_b.cancel()

    asyncio.run(scenario())
