#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the demo on embedded defaults: no outside service needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/avatarcast demo "$@"
