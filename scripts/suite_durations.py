"""Seconds per test file from a pytest JUnit XML report, for ``tests/durations.json``.

The parallel suite (``scripts/test.sh``) starts the slowest files first; this writes the table
it sorts by. Run a full suite with a JUnit report (``AVATARCAST_TEST_JUNIT=FILE.xml
./scripts/test.sh`` writes the parallel phase's to ``FILE.xml`` and the ``alone`` phase's to
``FILE-alone.xml``), then::

    python scripts/suite_durations.py FILE.xml FILE-alone.xml > tests/durations.json

Several reports add up (a file split between the two phases counts both parts).

A test's time in the report is its setup, call and teardown together. Rounded to 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def file_of(classname: str) -> str | None:
    """``tests.test_x`` or ``tests.test_x.TestY`` -> ``tests/test_x.py`` (the longest dotted
    prefix that is a file in the checkout); None for pytest's own entries (an internal error)."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]) + ".py"
        if (ROOT / path).is_file():
            return path
    return None


def seconds_per_file(*reports: Path) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for report in reports:
        for case in ET.parse(report).iter("testcase"):
            path = file_of(case.get("classname", ""))
            if path is not None:
                totals[path] += float(case.get("time", "0"))
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return {path: round(s, 1) for path, s in ordered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "reports", type=Path, nargs="+", help="pytest --junitxml output of a full run's phases"
    )
    table = seconds_per_file(*parser.parse_args().reports)
    json.dump(table, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
