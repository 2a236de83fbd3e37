"""The suite in several processes (pytest-xdist, as ``scripts/test.sh`` runs it).

Each file goes to one worker whole (``--dist loadfile``: a module's shared server and its file
order hold). xdist hands the files out in collection order (with ``--no-loadscope-reorder``), so
in a worker the files are sorted slowest first by ``durations.json`` (seconds per file from a
full run: ``scripts/suite_durations.py``): a two-minute file started last would run alone at the
end while the other workers sit idle. A file not in the table counts as a median one. In a
serial run nothing is reordered. The table is the 2-worker run of
2026-12-07 18:20 on the shared machine (load 2-12; benchmarks/README.md "Test suite"), both
phases' JUnit reports; two entries carry that run's failures (test_long_run's renewal, 62 s
of its 82, since fixed; the Ray test's 17 s teardown). Rewrite it from the next quiet CI run
(``AVATARCAST_TEST_JUNIT``, scripts/pytest_phases.sh).

Every resource a test starts is per process already: PostgreSQL, nginx-rtmp, the LLM and IRC
servers, Chromium and ``avatarcast serve`` listen on loopback ports picked free at run time and
keep their files under ``tmp_path`` or a ``mkdtemp`` folder.

A test whose check is how much CPU or time it gets on the machine (a model keeping up live, the
mute reaching Chromium's audio within 1 s, a check's microseconds) is marked ``alone``:
``scripts/test.sh`` runs those in one process after the parallel phase, so they see the same
quiet machine as in a serial run. They are listed here (``ALONE``, node-id prefixes), not in
their files, so the list is one place to read. All but the console failed their thresholds
(and nothing else) beside three workers at load 20-30 (benchmarks/README.md "Test suite"); the
console's mute check (silence within 1 s of the click, ``test_wall_mute_say_and_kill``) has
little room beside Chromium's own audio buffer, which passes it only on a quiet machine; it
and the crash alert's 3 s have a file and a server of their own so that the other console
tests run in the parallel phase.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")

#: Run after the parallel phase, in one process (a whole file where its tests share a server).
ALONE = (
    # mute to Chromium's silence within 1 s, a crash alert within 3 s (the rest of the console's
    # tests, ~1 min on one server, are in test_console.py and run in parallel)
    "tests/test_console_wall.py",
    # the fast model keeps up at 25 fps on one core; the slow one's misses start its fallback
    # 5 s into the speech (the file's other ten tests run no frame clock: parallel phase)
    "tests/test_mouth_onnx.py::test_fast_model_keeps_up_live",
    "tests/test_mouth_onnx.py::test_slow_model_falls_back_to_patches_with_no_late_or_frozen_frame",
    "tests/test_guardrails.py::test_a_check_takes_well_under_a_millisecond",
    "tests/test_voice_espeak.py::test_synthesis_runs_off_the_event_loop",
    "tests/test_llm_writer.py::test_clean_reply_streams_sentence_by_sentence",
    "tests/test_voices_net.py::test_edge_fails_fast_when_unreachable_and_espeak_speaks",
)


def expected_seconds() -> dict[str, float]:
    """Seconds per test file (``tests/test_x.py``) from the last recorded full run."""
    table: dict[str, float] = json.loads(DURATIONS.read_text())
    return table


def slowest_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """``items`` with whole files ordered by expected seconds (longest first, then by name);
    the order inside a file is kept."""
    median = statistics.median(seconds.values()) if seconds else 0.0

    def key(item: pytest.Item) -> tuple[float, str]:
        path = item.nodeid.split("::", 1)[0]
        return (-seconds.get(path, median), path)

    return sorted(items, key=key)  # stable: a file's own order holds


def alone(nodeid: str) -> bool:
    """Whether ``nodeid`` is in ``ALONE`` (a file, a test, or a test's parameters)."""
    return any(nodeid == p or nodeid.startswith((p + "::", p + "[")) for p in ALONE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alone: measures its own CPU or latency; scripts/test.sh runs it serially"
    )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    for item in items:
        if alone(item.nodeid):
            item.add_marker(pytest.mark.alone)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts the same way
        items[:] = slowest_first(items, expected_seconds())
