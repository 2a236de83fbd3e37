#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: lint, types, then pytest.
# Tests start their own servers (nginx-rtmp, PostgreSQL, a local OpenAI-compatible server,
# Chromium) and fail, never skip, when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export AVATARCAST_REQUIRE_ALL=1
.venv/bin/ruff check src tests scripts benchmarks
.venv/bin/ruff format --check src tests scripts benchmarks
.venv/bin/mypy
.venv/bin/lint-imports  # the layer contracts in pyproject.toml
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "$@"
