"""JUnit XML: the format CI services read test results from (one test case per check)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from avatarcast.replaytest.results import CheckResult, write_atomic

__all__ = ["junit_xml", "write_junit"]


def junit_xml(results: Sequence[CheckResult], *, suite: str, time_s: float = 0.0) -> bytes:
    failures = sum(1 for r in results if not r.ok)
    root = ET.Element("testsuites", tests=str(len(results)), failures=str(failures))
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{time_s:.3f}",
    )
    for r in results:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.{r.kind}", name=r.name)
        if r.ok:
            ET.SubElement(case, "system-out").text = r.message
        else:
            failure = ET.SubElement(case, "failure", message=r.message, type=r.kind)
            failure.text = f"{r.name}: {r.message}"
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(path: Path, results: Sequence[CheckResult], *, suite: str) -> None:
    """Write the file whole or not at all."""
    write_atomic(path, junit_xml(results, suite=suite))
