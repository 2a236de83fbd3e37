"""The suite in several processes (pytest-xdist, as ``scripts/test.sh`` runs it).

Each file goes to one worker whole (``--dist loadfile``: a module's shared server and its file
order hold). xdist hands the files out in collection order (with ``--no-loadscope-reorder``), so
in a worker the files are sorted slowest first by ``durations.json`` (seconds per file from a
full run: ``scripts/suite_durations.py``): a two-minute file started last would run alone at the
end while the other workers sit idle. A file not in the table counts as a median one. In a
serial run nothing is reordered.

Every resource a test starts is per process already: PostgreSQL, nginx-rtmp, the LLM and IRC
servers, Chromium and ``avatarcast serve`` listen on loopback ports picked free at run time and
keep their files under ``tmp_path`` or a ``mkdtemp`` folder.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")


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


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts the same way
        items[:] = slowest_first(items, expected_seconds())
