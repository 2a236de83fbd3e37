#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: lint, types, then pytest.
# Tests start their own servers (nginx-rtmp, PostgreSQL, a local OpenAI-compatible server,
# Chromium) and fail, never skip, when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export AVATARCAST_REQUIRE_ALL=1
# Bytecode for every module, once: where PYTHONDONTWRITEBYTECODE is set (this CI's environment,
# many containers) no import writes it, and every `serve`, stream worker and CLI process the
# tests start would compile the sources again (~1.2 CPU s per `serve` start; benchmarks/README.md
# "Test suite").
.venv/bin/python -m compileall -q -j 0 src tests >/dev/null
.venv/bin/ruff check src tests scripts benchmarks
.venv/bin/ruff format --check src tests scripts benchmarks
.venv/bin/mypy
.venv/bin/lint-imports  # the layer contracts in pyproject.toml
exec bash scripts/pytest_phases.sh "$@"  # the tests (no second setup or lint)
