"""The parallel suite's file order (tests/conftest_xdist.py) and its table
(scripts/suite_durations.py): slowest files first, a file's own order kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from conftest_xdist import ALONE, DURATIONS, alone, expected_seconds, slowest_first

ROOT = Path(__file__).resolve().parents[1]


def _items(*nodeids: str) -> list[Any]:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_slowest_files_first_and_each_files_order_kept() -> None:
    items = _items(
        "tests/test_a.py::test_2",
        "tests/test_a.py::test_1",
        "tests/test_b.py::test_x[sqlite]",
        "tests/test_b.py::test_x[postgresql]",
        "tests/test_c.py::TestK::test_y",
        "tests/test_new.py::test_z",
    )
    seconds = {"tests/test_a.py": 5.0, "tests/test_b.py": 90.0, "tests/test_c.py": 1.0}
    order = [i.nodeid for i in slowest_first(items, seconds)]
    assert order == [
        "tests/test_b.py::test_x[sqlite]",
        "tests/test_b.py::test_x[postgresql]",
        "tests/test_a.py::test_2",  # an unknown file counts as the median (5 s): after a
        "tests/test_a.py::test_1",  # file of 5 s by name, before the 1 s one
        "tests/test_new.py::test_z",
        "tests/test_c.py::TestK::test_y",
    ]


def test_the_table_is_written_from_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_suite_order" name="a" time="1.25"/>'
        '<testcase classname="tests.test_suite_order" name="b" time="2.0"/>'
        '<testcase classname="tests.conftest_xdist" name="c" time="7.5"/>'
        '<testcase classname="pytest" name="internal" time="0.000"/>'
        "</testsuite></testsuites>"
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "suite_durations.py"), str(report)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == {"tests/conftest_xdist.py": 7.5, "tests/test_suite_order.py": 3.2}
    assert list(json.loads(out)) == ["tests/conftest_xdist.py", "tests/test_suite_order.py"]


def test_the_suite_writes_junit_reports_of_both_phases_and_the_table_adds_them(
    tmp_path: Path,
) -> None:
    """``AVATARCAST_TEST_JUNIT`` in scripts/pytest_phases.sh (what scripts/test.sh runs after
    the lint): the parallel phase's report from xdist's controller, the ``alone`` phase's
    beside it, and scripts/suite_durations.py reads both into the slowest-first table."""
    report = tmp_path / "r.xml"
    env = {
        **os.environ,
        "AVATARCAST_TEST_JUNIT": str(report),
        "AVATARCAST_TEST_WORKERS": "2",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
    }
    test = "tests/test_suite_order.py::test_alone_names_whole_files_tests_and_their_parameters"
    # conftest_xdist alone (as a plugin): its `alone` marks and file order, no fixture imports
    run = subprocess.run(
        ["bash", "scripts/pytest_phases.sh", "--noconftest", "-p", "conftest_xdist", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    alone_report = tmp_path / "r-alone.xml"
    assert alone_report.is_file(), sorted(p.name for p in tmp_path.iterdir())
    assert ET.parse(alone_report).getroot().find("testsuite").get("tests") == "0"  # none alone
    cases = [c.get("name") for c in ET.parse(report).iter("testcase")]
    assert cases == ["test_alone_names_whole_files_tests_and_their_parameters"]
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "suite_durations.py"),
            str(report),
            str(alone_report),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert list(json.loads(out)) == ["tests/test_suite_order.py"], out


def test_the_table_adds_up_several_reports(tmp_path: Path) -> None:
    """A file split between the two phases counts both parts."""
    for name, seconds in (("a.xml", "1.5"), ("a-alone.xml", "2.25")):
        (tmp_path / name).write_text(
            '<testsuites><testsuite name="pytest">'
            f'<testcase classname="tests.test_suite_order" name="t" time="{seconds}"/>'
            "</testsuite></testsuites>"
        )
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "suite_durations.py"),
            str(tmp_path / "a.xml"),
            str(tmp_path / "a-alone.xml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == {"tests/test_suite_order.py": 3.8}


def test_the_checked_in_table_names_test_files_with_seconds() -> None:
    table = expected_seconds()
    assert table, f"{DURATIONS} is empty"
    for path, seconds in table.items():
        assert path.startswith("tests/test_") and path.endswith(".py"), path
        assert seconds >= 0, (path, seconds)


def test_alone_names_whole_files_tests_and_their_parameters() -> None:
    assert alone("tests/test_console_wall.py::test_wall_mute_say_and_kill")
    assert not alone("tests/test_console.py::test_every_page_passes_axe")
    assert alone("tests/test_voice_espeak.py::test_synthesis_runs_off_the_event_loop")
    assert alone("tests/test_guardrails.py::test_a_check_takes_well_under_a_millisecond[x]")
    assert not alone("tests/test_voice_espeak.py::test_chinese_voice_speaks")
    assert not alone("tests/test_console_parts.py::test_x")  # a prefix of a name is not it
    for prefix in ALONE:
        assert (ROOT / prefix.split("::")[0]).is_file(), prefix
