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
# AVATARCAST_TEST_WORKERS=N runs pytest in N processes (pytest-xdist), each test file in one
# of them (--dist loadfile: a module's shared server and its file order hold). Every session
# fixture is per process (PostgreSQL, nginx-rtmp, Chromium on free ports); stream starts
# still take turns machine-wide (avatarcast.startup). Default 1: measured in README "Tests".
workers=${AVATARCAST_TEST_WORKERS:-1}
parallel=()
if [ "$workers" -gt 1 ]; then parallel=(-n "$workers" --dist loadfile); fi
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "${parallel[@]}" "$@"
