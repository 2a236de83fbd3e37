"""Hot GETs read SQLite on the event loop, on a read-only connection of their own.

What must hold: the answers are the same as through the threadpool (the API suites run on
both paths: SQLite files here, PostgreSQL through the threadpool), a read never waits for a
writer or for the shared pool, and nothing can write through the loop's connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from avatarcast.control.context import AppContext

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    from conftest_api import start_api

    with start_api(f"sqlite:///{tmp_path / 'avatarcast.db'}") as api:
        yield api


def _ctx(api: Api) -> AppContext:
    ctx: AppContext = api.app.state.ctx
    return ctx


def _stream(api: Api) -> str:
    assert api.client.post("/v1/products", json=FRYER, headers=api.auth()).status_code == 201
    r = api.client.post(
        "/v1/streams", json={"name": "night", "product_ids": ["AF-1"]}, headers=api.auth()
    )
    assert r.status_code == 201, r.text
    stream_id: str = r.json()["id"]
    return stream_id


def test_only_a_sqlite_file_gets_a_loop_connection(api: Api) -> None:
    on_loop = _ctx(api).loop_sessions is not None
    assert on_loop == api.database_url.startswith("sqlite:///")


def test_the_loop_connection_cannot_write(sqlite_api: Api) -> None:
    stream_id = _stream(sqlite_api)
    ctx = _ctx(sqlite_api)
    with pytest.raises(OperationalError, match="readonly"):
        asyncio.run(ctx.read(lambda s: s.execute(text("DELETE FROM streams"))))
    r = sqlite_api.client.get(f"/v1/streams/{stream_id}", headers=sqlite_api.auth())
    assert r.status_code == 200


def test_a_get_answers_while_a_writer_holds_the_database_and_the_pool(sqlite_api: Api) -> None:
    """A write transaction left open and every pooled connection taken: through the
    threadpool a GET would wait up to 30 s for a connection; on the loop it answers at once,
    with the last committed data."""
    api = sqlite_api
    stream_id = _stream(api)
    engine = _ctx(api).engine
    pool_size = engine.pool.size() + engine.pool._max_overflow  # type: ignore[attr-defined]
    with ExitStack() as held:
        connections = [held.enter_context(engine.connect()) for _ in range(pool_size)]
        writer = connections[0]
        rename = text("UPDATE streams SET name = 'renamed' WHERE id = :id")
        writer.execute(rename, {"id": stream_id})
        assert writer.in_transaction()
        started = time.monotonic()
        stream = api.client.get(f"/v1/streams/{stream_id}", headers=api.auth())
        product = api.client.get("/v1/products/AF-1", headers=api.auth())
        took = time.monotonic() - started
        assert stream.status_code == 200 and product.status_code == 200
        assert stream.json()["name"] == "night"  # the writer has not committed
        assert product.json()["price"] == "89.99"
        assert took < 2.0, took
        writer.commit()
    assert api.client.get(f"/v1/streams/{stream_id}", headers=api.auth()).json()["name"] == (
        "renamed"
    )


def test_a_patch_is_read_back_at_once(sqlite_api: Api) -> None:
    """The write goes through a pooled connection, the read through the loop's: the read
    starts after the commit and must see it."""
    api = sqlite_api
    _stream(api)
    for n in range(20):
        price = f"{90 + n}.00"
        r = api.client.patch("/v1/products/AF-1", json={"price": price}, headers=api.auth())
        assert r.status_code == 200 and r.json()["price"] == price
        assert api.client.get("/v1/products/AF-1", headers=api.auth()).json()["price"] == price


def test_not_found_and_tenants_hold_on_the_loop(sqlite_api: Api) -> None:
    api = sqlite_api
    stream_id = _stream(api)
    api.problem(api.client.get("/v1/streams/nope", headers=api.auth()), 404)
    api.problem(api.client.get(f"/v1/streams/{stream_id}", headers=api.other), 404)
    api.problem(api.client.get("/v1/products/AF-1", headers=api.other), 404)
