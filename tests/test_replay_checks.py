"""Replay as a test (issue 19): ``--expect`` expressions, ``--baseline`` with tolerances,
JUnit XML and ``replay-diff``, judged on reports; exit codes of the command on real replays."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from avatarcast.replaytest.baseline import DEFAULT_TOLERANCES, compare, load_baseline
from avatarcast.replaytest.checks import plan_checks
from avatarcast.replaytest.diff import diff_reports, render_html, render_text
from avatarcast.replaytest.expect import parse_expectation
from avatarcast.replaytest.junit import junit_xml
from avatarcast.replaytest.results import CheckError
from llm_server import Reply, ScriptedLlmServer

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"


def _report(**summary: Any) -> dict[str, Any]:
    base = {
        "late_frames": 2,
        "lipsync_lag_ms": -40.0,
        "lipsync_lag_abs_ms": 40.0,
        "refusals": 0,
        "stale_price_sentences": 0,
        "repeated_sentences": 0,
        "answer_latency_p95": 0.8,
        "longest_silence_s": 0.6,
        "label_on_every_frame": True,
        "fps": 25.0,
    }
    transcript = [
        {"t": 0.0, "text": "Hello there.", "source": "disclosure"},
        {"t": 2.0, "text": "The fryer costs 89.99.", "source": "template"},
        {"t": 5.0, "text": "Order below.", "source": "template"},
    ]
    return {"summary": base | summary, "transcript": transcript, "events": {"handled": {"x": 2}}}


# --- expectations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("summary.longest_silence_s<=1.5", True),
        (" summary.longest_silence_s < 0.6 ", False),
        ("summary.refusals==0", True),
        ("summary.refusals != 0", False),
        ("summary.late_frames>=2", True),
        ("summary.late_frames>2", False),
        ("summary.label_on_every_frame==true", True),
        ("summary.lipsync_lag_ms>=-4e1", True),
        ("events.handled.x==2", True),
        ("transcript.1.t==2", True),
    ],
)
def test_expectations_compare_report_fields(text: str, ok: bool) -> None:
    result = parse_expectation(text).check(_report())
    assert result.ok is ok, result.message
    assert result.kind == "expect" and result.name == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "summary.longest_silence_s",
        "summary.x <= abc",
        "summary.x =< 1",
        "__import__('os').system('true')<=1",
        "summary.x<=1; rm -rf /",
        "<=1",
    ],
)
def test_malformed_expectations_are_refused_before_anything_runs(text: str) -> None:
    with pytest.raises(CheckError, match="not of the form PATH OP NUMBER"):
        parse_expectation(text)


def test_unknown_field_names_it_and_null_fails() -> None:
    with pytest.raises(CheckError, match=r"no field 'summary\.longest_silense_s'"):
        parse_expectation("summary.longest_silense_s<=1.5").check(_report())
    with pytest.raises(CheckError, match="'transcript' is not a number"):
        parse_expectation("transcript<=1").check(_report())
    result = parse_expectation("summary.answer_latency_p95<=1").check(
        _report(answer_latency_p95=None)
    )
    assert not result.ok and "not measured" in result.message


# --- baseline -------------------------------------------------------------------------------


def test_baseline_fails_only_the_figure_that_got_worse(tmp_path: Path) -> None:
    old, new = _report(), _report(repeated_sentences=2, late_frames=20, answer_latency_p95=1.2)
    results = {r.name: r for r in compare(old, new, DEFAULT_TOLERANCES)}
    assert set(results) == set(DEFAULT_TOLERANCES)
    assert not results["summary.repeated_sentences"].ok
    assert "old 0, new 2, delta +2" in results["summary.repeated_sentences"].message
    assert results["summary.late_frames"].ok  # within 25 frames
    assert results["summary.answer_latency_p95"].ok  # within 0.5 s
    assert [n for n, r in results.items() if not r.ok] == ["summary.repeated_sentences"]
    # better is fine; "not measured any more" is not
    assert all(r.ok for r in compare(old, _report(late_frames=0), DEFAULT_TOLERANCES))
    gone = compare(old, _report(lipsync_lag_abs_ms=None), DEFAULT_TOLERANCES)
    assert [r.name for r in gone if not r.ok] == ["summary.lipsync_lag_abs_ms"]


def test_tolerance_file_overrides_and_adds_figures(tmp_path: Path) -> None:
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(_report()))
    tol = tmp_path / "tol.toml"
    tol.write_text(
        "[figures]\n"
        '"summary.repeated_sentences" = 2\n'
        '"summary.longest_silence_s" = { increase = 0.1, ratio = 0.5 }\n'
        '"events.handled.x" = { better = "higher" }\n'
    )
    plan = plan_checks(baseline=old_path, tolerances=tol)
    new = _report(repeated_sentences=2, longest_silence_s=0.95)
    new["events"]["handled"]["x"] = 1
    failed = {r.name for r in plan.run(new) if not r.ok}
    assert failed == {"summary.longest_silence_s", "events.handled.x"}  # 0.6 + 0.3 < 0.95


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[figures]\n"summary.refusals" = { most = 1 }\n', "unknown key 'most'"),
        ('[figures]\n"summary.refusals" = { increase = -1 }\n', "'increase' must be a number"),
        ('[figures]\n"summary.nope" = 1\n', "figure 'summary.nope': baseline"),
        ("[figures\n", "not valid TOML"),
        ("[other]\n", "expected one table [figures]"),
    ],
)
def test_bad_tolerances_name_the_problem(tmp_path: Path, toml: str, message: str) -> None:
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(_report()))
    tol = tmp_path / "tol.toml"
    tol.write_text(toml)
    with pytest.raises(CheckError, match=message.replace("[", r"\[")):
        plan_checks(baseline=old_path, tolerances=tol)


def test_missing_or_broken_baseline_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="does not exist"):
        load_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"summary": {\n  "x": }')
    with pytest.raises(CheckError, match=r"bad.json:2: baseline is not valid JSON"):
        load_baseline(bad)
    bad.write_text("[]")
    with pytest.raises(CheckError, match="not a replay report"):
        load_baseline(bad)


# --- JUnit and diff -------------------------------------------------------------------------


def test_junit_has_one_case_per_check_and_names_the_failure() -> None:
    old, new = _report(), _report(refusals=3)
    results = [parse_expectation("summary.longest_silence_s<=1.5").check(new)]
    results += compare(old, new, DEFAULT_TOLERANCES)
    root = ET.fromstring(junit_xml(results, suite="night"))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == str(1 + len(DEFAULT_TOLERANCES))
    assert suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases].count("night.expect") == 1
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["summary.refusals"]
    failure = failed[0].find("failure")
    assert failure is not None and "old 0, new 3" in (failure.get("message") or "")


def test_diff_shows_figures_and_changed_sentences() -> None:
    a, b = _report(), copy.deepcopy(_report(refusals=2))
    b["transcript"][1] = {"t": 2.04, "text": "The fryer costs 84.99.", "source": "template"}
    b["transcript"][2]["t"] = 5.2
    d = diff_reports(a, b, names=("a.json", "b.json"))
    rows = {r.name: r for r in d.figures}
    assert rows["refusals"].delta == 2 and rows["late_frames"].delta == 0
    assert [(c.op, c.text) for c in d.lines] == [
        ("-", "The fryer costs 89.99."),
        ("+", "The fryer costs 84.99."),
    ]
    assert d.same_sentences == 2 and d.moved == 1
    text = render_text(d)
    assert "- " in text and "+ " in text and "84.99" in text
    assert "refusals" in text and "+2" in text
    page = render_html(d)
    assert "<caption>Figures (summary)</caption>" in page and "84.99" in page
    assert "<script" not in render_html(
        diff_reports(a, _with_text(b, "<script>x</script>"), names=("a", "b"))
    )


def _with_text(report: dict[str, Any], text: str) -> dict[str, Any]:
    out = copy.deepcopy(report)
    out["transcript"][0]["text"] = text
    return out


# --- the command ----------------------------------------------------------------------------


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def _session(tmp: Path, *events: dict[str, Any], duration: float = 10) -> Path:
    head = {"type": "session", "catalog": str(DEMO), "lang": "en", "duration": duration, "seed": 3}
    path = tmp / "s.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (head, *events)) + "\n")
    return path


def test_replay_exit_codes_and_junit(tmp_path: Path) -> None:
    chat = {"t": 1.0, "type": "chat", "viewer_id": "v", "name": "Sam", "text": "How big is it?"}
    s = _session(tmp_path, chat, duration=4)
    run = ("replay", str(s), "--out", "r.mp4", "--report", "r.json", "--junit", "j.xml")
    good = _cli(*run, "--expect", "summary.longest_silence_s<=1.5", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("tests") == "1" and root.get("failures") == "0"

    bad = _cli(
        *run,
        "--expect",
        "summary.frames==100",
        "--expect",
        "summary.answer_latency_p95<0.01",
        cwd=tmp_path,
    )
    assert bad.returncode == 1, bad.stderr
    assert "FAIL expect summary.answer_latency_p95<0.01" in bad.stderr
    assert "1 of 2 checks failed" in bad.stderr
    failed = [c.get("name") for c in ET.parse(tmp_path / "j.xml").iter("testcase") if len(c)]
    assert "summary.answer_latency_p95<0.01" in failed

    unknown = _cli(*run, "--expect", "summary.longest_silense_s<=1", cwd=tmp_path)
    assert unknown.returncode == 2 and "summary.longest_silense_s" in unknown.stderr

    # bad input is refused before the replay runs
    for extra, says in (
        (("--baseline", "missing.json"), "missing.json' does not exist"),
        (("--expect", "summary.frames"), "not of the form"),
        (("--tolerances", "t.toml"), "--tolerances needs --baseline"),
    ):
        r = _cli("replay", str(s), "--out", "x.mp4", "--report", "x.json", *extra, cwd=tmp_path)
        assert r.returncode == 2 and says in r.stderr, r.stderr
        assert not (tmp_path / "x.mp4").exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(s.read_text() + '{"t": 2, "type": "chat", "text": "x"\n')
    r = _cli("replay", str(broken), "--out", "x.mp4", "--report", "x.json", cwd=tmp_path)
    assert r.returncode == 2 and "broken.jsonl:3: not valid JSON" in r.stderr


def test_a_writer_that_repeats_itself_fails_against_the_baseline(tmp_path: Path) -> None:
    """A good build (the template writer) gives the baseline; a build whose model repeats one
    sentence gets refused by the guardrails: exit 1, the JUnit file names the refusals."""
    s = _session(tmp_path)
    base = _cli("replay", str(s), "--out", "a.mp4", "--report", "good.json", cwd=tmp_path)
    assert base.returncode == 0, base.stderr
    loop = "This air fryer is the best air fryer in the world."
    with ScriptedLlmServer(default=Reply(f"{loop} {loop}", token_delay=0.0)) as server:
        env = dict(os.environ, AVATARCAST_LLM__BASE_URL=server.base_url)
        env["AVATARCAST_LLM__MODEL"] = "test-model"
        r = _cli(
            *("replay", str(s), "--out", "b.mp4", "--report", "bad.json", "--writer", "llm"),
            *("--baseline", "good.json", "--junit", "j.xml"),
            cwd=tmp_path,
            env=env,
        )
    assert r.returncode == 1, r.stderr
    assert "FAIL baseline summary.refusals" in r.stderr
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "j.xml").iter("testcase")}
    assert set(cases) == set(DEFAULT_TOLERANCES)
    assert cases["summary.refusals"].find("failure") is not None
    assert cases["summary.stale_price_sentences"].find("failure") is None
    diff = _cli("replay-diff", "good.json", "bad.json", "--html", "d.html", cwd=tmp_path)
    assert diff.returncode == 0, diff.stderr
    assert "refusals" in diff.stdout and (tmp_path / "d.html").read_text().startswith("<!doctype")
