#!/usr/bin/env bash
# The pytest part of scripts/test.sh (which sets up, lints and type-checks first): the tests
# in parallel, then the `alone` ones in one process. Arguments go to pytest in both phases.
set -euo pipefail
cd "$(dirname "$0")/.."
# pytest runs in AVATARCAST_TEST_WORKERS processes (pytest-xdist; 1: one process). Each test
# file goes to one worker whole (--dist loadfile: a module's shared server and its file order
# hold), slowest files first (tests/conftest_xdist.py sorts by tests/durations.json; xdist keeps
# that order with --no-loadscope-reorder). Every session fixture is per process (PostgreSQL,
# nginx-rtmp, Chromium on free ports); stream starts still take turns machine-wide
# (avatarcast.startup). The tests marked `alone` (they measure their own CPU or latency; listed
# in tests/conftest_xdist.py) run afterwards in one process. Default 4 on 2 cores: most of a
# worker's time is waits on real-time streams, start-ups and Chromium (2 workers computed 282
# and 343 s of their 675 s each), so more workers overlap them until the CPU is the floor. Clean
# clone, quiet machine (benchmarks/README.md "Test suite"): 2 workers 14 min 14 s, 3 workers
# 7 min 45 s and 8 min 11 s, 4 workers 7 min 21 s, and after the fourth pass's cuts 4 workers
# 6 min 51 s (parallel 6 min 16 s at load 4.9 median). Beside other heavy work use 2: 3 workers
# beside a soak, when the suite took ~1400 CPU s, failed 14 real-time checks on starved CPUs.
# AVATARCAST_TEST_JUNIT=FILE.xml: a JUnit XML report of the run (the parallel phase, or the whole
# serial run) in FILE.xml, the `alone` phase's in FILE-alone.xml; both together rewrite the
# slowest-first table: scripts/suite_durations.py FILE.xml FILE-alone.xml > tests/durations.json
workers=${AVATARCAST_TEST_WORKERS:-4}
junit=${AVATARCAST_TEST_JUNIT:-}
# The plugins are named, not found through their entry points: pytest rewrites the asserts of
# every module of a distribution that declares one (all of Hypothesis, schemathesis and anyio,
# ~280 modules), in each of its processes; named, only the plugin modules are. Collection of the
# suite: 8.3 against 9.8 CPU s per process (2026-12-07, each of 4 workers and the `alone` phase).
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
plugins=(-p xdist.plugin -p pytest_asyncio.plugin -p pytest_timeout -p anyio.pytest_plugin
  -p _hypothesis_pytestplugin -p schemathesis.pytest.plugin)
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider "${plugins[@]}" --durations=25)
main_report=() alone_report=()
if [ -n "$junit" ]; then
  main_report=("--junitxml=$junit") alone_report=("--junitxml=${junit%.xml}-alone.xml")
fi
if [ "$workers" -le 1 ]; then
  exec "${pytest[@]}" "${main_report[@]}" "$@"
fi
rc=0
"${pytest[@]}" "${main_report[@]}" -n "$workers" --dist loadfile --no-loadscope-reorder \
  -m "not alone" "$@" || rc=$?
targets=("$@")
if [ $# -eq 0 ]; then  # the files that hold `alone` tests: no second collection of the suite
  read -ra targets < <(.venv/bin/python -c 'import sys; sys.path.insert(0, "tests")
from conftest_xdist import ALONE; print(" ".join(sorted({p.split("::")[0] for p in ALONE})))')
fi
alone=0
"${pytest[@]}" "${alone_report[@]}" -m alone "${targets[@]}" || alone=$?
# 5: no test selected in that phase (a run of some files), fine when the other phase ran some
if [ "$rc" -eq 5 ] && [ "$alone" -eq 0 ]; then rc=0; fi
if [ "$alone" -ne 0 ] && [ "$alone" -ne 5 ]; then rc=$alone; fi
exit "$rc"
