"""docs/licenses.md lists every runtime dependency with its licence, and says what espeak-ng's
GPL-3.0 means for a distributed bundle.

OWASP API9:2023 (Improper Inventory Management): an inventory of what runs, kept current.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "licenses.md"


def test_licence_table_is_current_api9_2023() -> None:
    """API9:2023: regenerating the table with pip-licenses changes nothing."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "licenses.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_every_direct_dependency_is_listed_and_gpl_stated_api9_2023() -> None:
    """API9:2023: each dependency in pyproject.toml has a row; the GPL-3.0 note is there."""
    text = DOC.read_text()
    rows = {
        re.sub(r"[-_.]+", "-", m.group(1)).lower()
        for m in re.finditer(r"^\| ([A-Za-z0-9_.-]+) \| ", text, re.MULTILINE)
    }
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in rows, name
    assert "**espeak-ng is GPL-3.0-or-later, and it is the default voice.**" in text
    assert "stay\nApache-2.0" in text or "stay Apache-2.0" in text
    assert "| espeakng-loader | not declared; bundles espeak-ng (GPL-3.0-or-later) |" in text
