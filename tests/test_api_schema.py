"""The API against its own OpenAPI document: generated requests, migrations vs models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import schemathesis
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from avatarcast.db import Base

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)

EXAMPLES_PER_OPERATION = 25
NEGATIVE_EXAMPLES_PER_OPERATION = 10
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_generated_requests_get_no_5xx_and_match_the_schema(api: Api) -> None:
    """At least 500 generated cases over every operation, with a valid admin key."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    auth = api.auth("admin")
    cases: dict[str, int] = {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

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
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to break in a parameterless GET
        except Exception as e:  # hypothesis re-raises the shrunk failure; collect them all
            failures.append(f"{label}: {type(e).__name__}: {e}")

    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE, EXAMPLES_PER_OPERATION)
        fuzz(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES_PER_OPERATION)
    assert not failures, "\n\n".join(failures[:5])
    print(f"schemathesis: {sum(cases.values())} cases over {len(operations)} operations")
    assert sum(cases.values()) >= 500, cases
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
