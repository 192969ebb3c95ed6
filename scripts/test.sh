#!/usr/bin/env bash
# The whole test suite: every tox leg (py27, py311, py313, lint, typing,
# integration), then a seconds-long smoke run of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
. build/env.sh
.venv/bin/tox run -e "${TOXENV:-py27,py311,py313,lint,typing,integration}" "$@"
.venv/bin/python -m bench --smoke
