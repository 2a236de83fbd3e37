"""One permission table for the REST API and the console (``control.permissions``).

Every ``/v1`` route is in the table and its role dependency asks for exactly the table's
grants; every console action names the route it runs (``console.auth.Permit``) and is refused
to a key that route would refuse, with the route's own words.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from avatarcast.console.auth import Permit
from avatarcast.control import create_key, upgrade_database
from avatarcast.control.deps import RoleCheck, current_caller
from avatarcast.control.permissions import ANY_KEY, PERMISSIONS, PUBLIC
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.server import create_server_app
from avatarcast.settings import Settings

#: console routes without a Permit: the pages (each shows only what ``may`` allows), sign-in
#: and sign-out, and the event stream (it carries only the tenant's own events)
CONSOLE_PAGES = {
    "home",
    "sign_in_page",
    "sign_in",
    "sign_out",
    "streams_page",
    "stream_page",
    "wall_page",
    "schedules_page",
    "audit_page",
    "events",
}


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's included routers
            yield from _routes(route.original_router.routes)


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    url = f"sqlite:///{tmp_path_factory.mktemp('perm') / 'p.db'}"
    return create_server_app(Settings(database_url=url))


def test_every_api_route_asks_for_the_tables_grants(app: FastAPI) -> None:
    api = [r for r in _routes(app.routes) if not r.path.startswith("/console")]
    assert len(api) > 60
    wrong: list[str] = []
    for route in api:
        if route.name not in PERMISSIONS:
            wrong.append(f"{route.path}: {route.name} is not in permissions.PERMISSIONS")
            continue
        calls = list(_calls(route.dependant))
        checks = {frozenset(c.roles) for c in calls if isinstance(c, RoleCheck)}
        keyed = current_caller in calls
        wanted = PERMISSIONS[route.name]
        if wanted == PUBLIC:
            found = "an API key" if keyed else None
        elif wanted == ANY_KEY:
            found = None if keyed and not checks else f"key {keyed}, roles {checks}"
        else:
            found = None if checks == {wanted} else f"roles {checks}"
        if found is not None:
            wrong.append(f"{route.path} ({route.name}): the table says {sorted(wanted)}, {found}")
    names = {r.name for r in api}
    wrong += [
        f"{name}: in the table, but no route has that name" for name in PERMISSIONS.keys() - names
    ]
    assert not wrong, "\n".join(wrong)


def test_every_console_action_names_a_route_of_the_table(app: FastAPI) -> None:
    console = [r for r in _routes(app.routes) if r.path.startswith("/console")]
    unchecked: list[str] = []
    named: set[str] = set()
    for route in console:
        permits = [c for c in _calls(route.dependant) if isinstance(c, Permit)]
        if route.name in CONSOLE_PAGES:
            assert not permits, f"{route.name} is a page but has a Permit: drop it from the list"
            continue
        if len(permits) != 1:
            unchecked.append(f"{route.path} ({route.name}) has {len(permits)} Permit checks")
            continue
        named |= set(permits[0].routes.values())
    assert not unchecked, "\n".join(unchecked)
    assert named <= PERMISSIONS.keys()
    # the console covers the supervisor's and the operator's work
    assert {"create_stream", "create_destination", "kill", "mute", "decide_answer"} <= named
    with pytest.raises(KeyError, match="not a /v1 route"):
        Permit("no_such_route")


def test_a_console_action_is_refused_as_its_route_refuses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    keys = {r: create_key(sessions, tenant_name="acme", role=r)[1] for r in ("backend", "operator")}
    engine.dispose()
    settings = Settings(database_url=url, api={"rate_limit": {"rate": 1000, "burst": 1000}})
    with TestClient(create_server_app(settings), base_url="http://127.0.0.1") as client:
        outcomes = {}
        for role, key in keys.items():
            client.cookies.clear()
            origin = {"Origin": "http://127.0.0.1"}
            r = client.post("/console/sign-in", data={"api_key": key}, headers=origin)
            assert r.status_code in (200, 303), r.text
            page = client.get("/console/streams").text
            csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
            headers = {**origin, "X-CSRF-Token": csrf, "HX-Request": "true"}
            pause = client.post("/console/streams/nope/state/pause", headers=headers)
            start = client.post("/console/streams/nope/state/start", headers=headers)
            made = client.post(
                "/console/destinations", data={"name": "d", "url": "rtmp://x"}, headers=headers
            )
            outcomes[role] = (pause.status_code, start.status_code, made.status_code, pause.text)
            # what the page offers is the table's answer too
            assert ("Add destination" in page) is (role == "operator"), role
        # a backend key may start (a writer) but not pause (operators and supervisors) or
        # create destinations; an operator passes both checks and reaches the routes (404)
        assert outcomes["backend"][:3] == (403, 404, 403), outcomes
        assert "needs an operator or supervisor key" in outcomes["backend"][3]
        assert outcomes["operator"][:2] == (404, 404), outcomes
        assert outcomes["operator"][2] == 422, outcomes  # the API's URL check answered
