"""The checks of one replay, planned before it runs (bad input fails before any work) and
judged on its report afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarcast.replaytest.baseline import Tolerance, compare, load_baseline, load_tolerances
from avatarcast.replaytest.expect import Expectation, parse_expectation
from avatarcast.replaytest.junit import write_junit
from avatarcast.replaytest.results import MISSING, CheckError, CheckResult, lookup

__all__ = ["CheckPlan", "plan_checks"]


@dataclass(slots=True, kw_only=True)
class CheckPlan:
    expectations: list[Expectation] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    baseline_path: Path | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    junit: Path | None = None

    @property
    def empty(self) -> bool:
        return not self.expectations and self.baseline is None

    def run(self, report: dict[str, Any], *, suite: str = "avatarcast-replay") -> list[CheckResult]:
        """Judge ``report``; writes the JUnit file when asked. CheckError on an unknown field."""
        results = [e.check(report) for e in self.expectations]
        if self.baseline is not None:
            results += compare(
                self.baseline, report, self.tolerances, baseline_name=str(self.baseline_path)
            )
        if self.junit is not None:
            write_junit(self.junit, results, suite=suite)
        return results


def plan_checks(
    *,
    expect: Sequence[str] = (),
    baseline: Path | None = None,
    tolerances: Path | None = None,
    junit: Path | None = None,
) -> CheckPlan:
    """Parse and load everything the checks need; CheckError names what is wrong."""
    plan = CheckPlan(expectations=[parse_expectation(x) for x in expect], junit=junit)
    if tolerances is not None and baseline is None:
        raise CheckError("--tolerances needs --baseline (the report to compare with)")
    if baseline is not None:
        plan.baseline = load_baseline(baseline)
        plan.baseline_path = baseline
        plan.tolerances = load_tolerances(tolerances)
        for name in plan.tolerances:
            if lookup(plan.baseline, name) is MISSING:
                raise CheckError(f"figure {name!r}: baseline {str(baseline)!r} has no such field")
    if junit is not None:
        parent = junit.parent if str(junit.parent) else Path(".")
        if not parent.is_dir():
            raise CheckError(f"cannot write --junit {str(junit)!r}: no folder {str(parent)!r}")
    return plan


def failing(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.ok]
