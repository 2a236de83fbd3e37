"""Fixtures for the API tests: every test runs against SQLite and a real PostgreSQL.

Test modules load this with ``pytest_plugins = ("conftest_api",)`` and import it only under
``TYPE_CHECKING`` (a plain import would stop pytest from rewriting its asserts).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from avatarcast.control import create_app, create_key, upgrade_database
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.server import create_server_app
from avatarcast.settings import Settings
from pg_server import PgServer
from sqlite_template import migrated_sqlite

ROLES = ("admin", "operator", "supervisor", "backend")
_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.start()  # raises when PostgreSQL is missing: never a skip
    try:
        server.create_database("api_template")
        upgrade_database(server.url("api_template"))
        yield server
    finally:
        server.stop()


def _database_url(request: pytest.FixtureRequest, folder: Path) -> str:
    if request.param == "sqlite":  # migrated: a copy of this process's template
        return migrated_sqlite(folder / "var" / "avatarcast.db")
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database(f"api_{next(_db_numbers)}", template="api_template")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _database_url(request, tmp_path)


def make_settings(
    database_url: str,
    *,
    sections: dict[str, Any] | None = None,
    zygote: bool = False,
    **api: Any,
) -> Settings:
    """The app's settings; the runner's worker zygote only with ``zygote``.

    A zygote imports the whole pipeline when the app starts (~0.8 CPU s, 0.7-1 s) and most
    of these apps start no stream: in test_api_auth's 36 apps it was 12 of 22 CPU s even when
    stopped at the app's close. A stream started without one is a cold worker, the fallback the
    runner has while the zygote is down. The files that start streams ask for it
    (``WORKER_ZYGOTE = True``, see ``api``); ``serve`` in the served tests runs as deployed."""
    api.setdefault("rate_limit", {"rate": 10_000, "burst": 10_000})
    sections = {"runner": {"zygote": zygote}, **(sections or {})}
    return Settings(database_url=database_url, api=api, **sections)


@dataclass
class Api:
    """A running app, its database, and keys: ``keys[role]`` in tenant A, ``other`` in B."""

    app: FastAPI
    client: TestClient
    engine: Engine
    database_url: str
    tenant_id: str
    keys: dict[str, str] = field(default_factory=dict)
    other_tenant_id: str = ""
    other_key: str = ""

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    @staticmethod
    def problem(response: Any, status: int) -> dict[str, Any]:
        """Assert an RFC 9457 problem with ``status`` and return its body."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body: dict[str, Any] = response.json()
        assert body["status"] == status
        assert body["title"] and body["type"]
        return body

    def supervisor(self, name: str = "Sam Watcher") -> tuple[str, dict[str, str]]:
        """A new supervisor record and the auth headers of a key linked to it."""
        body = {"full_name": name, "contact": "+31 20 555 0100", "reference": "ID-0042"}
        r = self.client.post("/v1/supervisors", json=body, headers=self.auth("operator"))
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        key = {"name": f"{name} key", "role": "supervisor", "supervisor_id": sid}
        r = self.client.post("/v1/keys", json=key, headers=self.auth("operator"))
        assert r.status_code == 201, r.text
        return sid, {"Authorization": f"Bearer {r.json()['key']}"}

    def on_duty(self, stream_id: str) -> tuple[str, dict[str, str]]:
        """Put a new supervisor on duty for ``stream_id`` (a stream cannot start without)."""
        sid, headers = self.supervisor()
        r = self.client.post(
            f"/v1/streams/{stream_id}/supervisor/duty",
            json={"supervisor_id": sid},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        return sid, headers

    @property
    def other(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.other_key}"}


@contextmanager
def start_api(
    database_url: str,
    *,
    sections: dict[str, Any] | None = None,
    console: bool = False,
    zygote: bool = False,
    **api: Any,
) -> Iterator[Api]:
    """Migrate, create tenants ``acme`` (every role) and ``globex`` (operator), serve.

    ``sections`` are other settings sections, e.g. ``{"supervision": {...}}``; ``console``:
    the whole server as ``serve`` runs it (``create_server_app``), the console included."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    keys = {}
    tenant_id = ""
    for role in ROLES:
        tenant_id, keys[role] = create_key(sessions, tenant_name="acme", role=role)
    other_tenant, other_key = create_key(sessions, tenant_name="globex", role="operator")
    settings = make_settings(database_url, sections=sections, zygote=zygote, **api)
    app = create_server_app(settings) if console else create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(app, client, engine, database_url, tenant_id, keys, other_tenant, other_key)
    engine.dispose()


def _zygote(request: pytest.FixtureRequest) -> bool:
    """A test module that starts streams sets ``WORKER_ZYGOTE = True``: its apps fork their
    workers as deployed (see ``make_settings``)."""
    return bool(getattr(request.module, "WORKER_ZYGOTE", False))


@pytest.fixture
def api(database_url: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    with start_api(database_url, zygote=_zygote(request)) as running:
        yield running


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """One app per database for a whole test module, for tests that only read what the app
    serves or leave nothing another test of the module depends on (``test_api_schema``: its
    three tests made six apps, each migrated, keyed, started and stopped: 1-3 s of setup each
    beside the soak benchmark)."""
    url = _database_url(request, tmp_path_factory.mktemp("api"))
    with start_api(url, zygote=_zygote(request)) as running:
        yield running


@pytest.fixture
def api_factory(
    database_url: str, request: pytest.FixtureRequest
) -> Callable[..., AbstractContextManager[Api]]:
    """``with api_factory(**api_settings) as api:`` -- another app on the same database."""
    return partial(start_api, database_url, zygote=_zygote(request))
