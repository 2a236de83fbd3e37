"""The import contracts in pyproject.toml hold, and an import against them makes them fail.

``lint-imports`` runs on a copy of the package: as it is (kept), then with one upward import
added (broken, naming that import). The upward import is a lazy one inside a function, the
kind that slips through review.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--config", str(config), "--no-cache"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_package(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "avatarcast",
        src / "avatarcast",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    config = tmp_path / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", config)
    return src, config


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    src, config = copy_package(tmp_path)
    kept = lint(src, config)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Contracts: 2 kept, 0 broken." in kept.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    src, config = copy_package(tmp_path)
    model = src / "avatarcast" / "catalog" / "model.py"
    model.write_text(
        model.read_text(encoding="utf-8")
        + "\n\ndef _peek() -> object:\n"
        + "    from avatarcast.control import app\n\n"
        + "    return app\n",
        encoding="utf-8",
    )
    broken = lint(src, config)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "avatarcast layers BROKEN" in broken.stdout
    assert "avatarcast.catalog.model -> avatarcast.control.app" in broken.stdout


def test_a_vendor_sdk_outside_its_folder_breaks_the_vendor_contract(tmp_path: Path) -> None:
    src, config = copy_package(tmp_path)
    answers = src / "avatarcast" / "chat" / "answers.py"
    answers.write_text(answers.read_text(encoding="utf-8") + "\nimport openai\n", encoding="utf-8")
    broken = lint(src, config)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "vendor SDKs stay behind their folder BROKEN" in broken.stdout
    assert "avatarcast.chat.answers -> openai" in broken.stdout
