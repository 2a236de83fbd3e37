"""A migrated SQLite database for a test, copied from one migrated once per process.

Running the eleven migrations costs about 0.1 s of CPU; a test database copied from a template
costs a file copy, and ``upgrade_database`` on it then only reads the revision. The copy is the
same file a fresh migration writes (the template's engine is disposed first, so its WAL is
checkpointed into the main file).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

from avatarcast.db import upgrade_database

__all__ = ["migrated_sqlite"]


@cache
def _template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="avatarcast-sqlite-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "avatarcast.db"
    upgrade_database(f"sqlite:///{path}")  # disposes its engine: no -wal file is left
    leftover = [p.name for p in folder.iterdir() if p != path]
    assert not leftover, f"the template left {leftover} beside the database"
    return path


def migrated_sqlite(path: Path) -> str:
    """The URL of a database at ``path`` at the latest migration (copied from the template
    unless ``path`` already exists)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the app makes it
        shutil.copy(_template(), path)  # its mode too: the app makes its database private
    return f"sqlite:///{path}"
