"""The API against its own OpenAPI document: generated requests, migrations vs models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.python.asgi import ASGIClient

from avatarcast.db import Base

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)

EXAMPLES_PER_OPERATION = 25
NEGATIVE_EXAMPLES_PER_OPERATION = 10
#: the PostgreSQL run: every operation that takes input, with fewer examples (see the test)
PG_EXAMPLES_PER_OPERATION = 8
PG_NEGATIVE_EXAMPLES_PER_OPERATION = 4
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def api(module_api: Api) -> Api:
    """Its tests read the app or its schema and share one app per database (``module_api``)."""
    return module_api


def _takes_input(operation: Any) -> bool:
    """A path, query or header parameter, or a body: something generated reaches the DB."""
    return bool(
        len(operation.path_parameters)
        or len(operation.query)
        or len(operation.headers)
        or len(operation.body)
    )


def test_generated_requests_get_no_5xx_and_match_the_schema(api: Api) -> None:
    """At least 500 generated cases over every operation, with a valid admin key, on SQLite.

    The handlers, the request validation and the response schemas are the same code on both
    databases, so the full run (25 + 10 cases per operation, ~60 s) is done once, on SQLite.
    What differs on PostgreSQL is what the database itself refuses where SQLite takes it:
    string lengths, NUL characters, integers past 64 bits, type casts in filters and unique
    constraints. Those come from generated *values*, so the PostgreSQL run takes every
    operation with a parameter or a body (a parameterless GET sends the same request on both)
    at 8 + 4 cases each: hypothesis tries its boundary values (empty and long strings, NUL,
    huge integers) among the first cases it draws, and ``derandomize`` keeps them the same
    from run to run. Measured: 984 cases over 82 operations on PostgreSQL, where the full run
    made up to 2 975 (85 x 35; 58 s in the quiet CI run of 2026-12-07).
    """
    # the document from the running app, and its requests sent in-process to that app (one
    # ASGI session for every case): ``from_asgi`` and a session per case would start the app's
    # lifespan a second time (the runner, scheduler and leader loop on the same context), left
    # running until the process exits
    schema = schemathesis.openapi.from_dict(api.client.get("/openapi.json").json())
    schema.app, schema.location = api.app, "/openapi.json"
    session = ASGIClient(api.app)
    auth = api.auth("admin")
    cases: dict[str, int] = {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    full = api.database_url.startswith("sqlite")
    positive, negative, least = (
        (EXAMPLES_PER_OPERATION, NEGATIVE_EXAMPLES_PER_OPERATION, 500)
        if full
        else (PG_EXAMPLES_PER_OPERATION, PG_NEGATIVE_EXAMPLES_PER_OPERATION, 150)
    )
    if not full:
        operations = [op for op in operations if _takes_input(op)]
        assert len(operations) >= 15, [op.label for op in operations]

    def fuzz(operation: Any, mode: GenerationMode, examples: int) -> None:
        label = operation.label

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            cases[label] = cases.get(label, 0) + 1
            case.call_and_validate(session=session, headers=auth, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to break in a parameterless GET
        except Exception as e:  # hypothesis re-raises the shrunk failure; collect them all
            failures.append(f"{label}: {type(e).__name__}: {e}")

    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE, positive)
        fuzz(operation, GenerationMode.NEGATIVE, negative)
    assert not failures, "\n\n".join(failures[:5])
    print(f"schemathesis: {sum(cases.values())} cases over {len(operations)} operations")
    assert sum(cases.values()) >= least, cases
    assert set(cases) == {op.label for op in operations}, cases


def test_migrations_match_the_models(api: Api) -> None:
    with api.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_errors_are_documented_as_problem_json(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    responses = doc["paths"]["/v1/products/{product_id}"]["get"]["responses"]
    for status in ("401", "403", "404", "422", "429"):
        assert "application/problem+json" in responses[status]["content"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
