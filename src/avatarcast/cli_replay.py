"""Replay as a test: judging a replay's report (``replay --expect/--baseline/--junit``) and
``replay-diff``. Exit codes: 0 every check holds, 1 one fails (printed), 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from avatarcast.cli_support import err, out, reported

if TYPE_CHECKING:
    from avatarcast.replaytest.checks import CheckPlan

__all__ = ["ExpectOpt", "judge", "plan", "replay_diff"]

ExpectOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--expect",
        help="A check on a report field, e.g. 'summary.longest_silence_s<=1.5' (repeatable).",
    ),
]
BaselineOpt = Annotated[
    Path | None,
    typer.Option("--baseline", help="An older report whose figures may not get worse."),
]
TolerancesOpt = Annotated[
    Path | None,
    typer.Option("--tolerances", help="TOML file of per-figure tolerances (with --baseline)."),
]
JunitOpt = Annotated[
    Path | None, typer.Option("--junit", help="Write the checks as JUnit XML to this file.")
]


def plan(
    expect: list[str] | None, baseline: Path | None, tolerances: Path | None, junit: Path | None
) -> CheckPlan:
    """The checks, parsed and loaded before the replay runs (exit 2 on bad input)."""
    from avatarcast.replaytest.checks import plan_checks

    with reported():
        return plan_checks(
            expect=expect or (), baseline=baseline, tolerances=tolerances, junit=junit
        )


def judge(checks: CheckPlan, report: dict[str, Any]) -> None:
    """Run the checks on ``report``; print them; exit 1 if one fails, 2 on an unknown field."""
    if checks.empty and checks.junit is None:
        return
    with reported():
        results = checks.run(report)
    failed = [r for r in results if not r.ok]
    for r in results:
        mark = "[green]ok  [/]" if r.ok else "[bold red]FAIL[/]"
        (out if r.ok else err).print(
            f"{mark} {r.kind} {r.name}: {r.message}", highlight=False, markup=True, soft_wrap=True
        )
    if failed:
        err.print(f"{len(failed)} of {len(results)} checks failed", highlight=False)
        raise typer.Exit(code=1)


def replay_diff(
    a: Annotated[Path, typer.Argument(help="The older report (.json).")],
    b: Annotated[Path, typer.Argument(help="The newer report (.json).")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the diff as an HTML page.")
    ] = None,
) -> None:
    """Two replay reports side by side: each figure old/new/delta, and the changed sentences."""
    from avatarcast.replaytest.diff import diff_reports, load_report, render_html, render_text
    from avatarcast.replaytest.results import write_atomic

    with reported():
        d = diff_reports(load_report(a), load_report(b), names=(str(a), str(b)))
        if html is not None:
            write_atomic(html, render_html(d).encode("utf-8"))
    out.print(render_text(d), highlight=False, markup=False, end="", soft_wrap=True)
