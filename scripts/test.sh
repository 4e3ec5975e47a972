#!/usr/bin/env bash
# Install into .venv (if needed) and run the whole test suite. Safe to run again.
# The tests run in parallel (pytest-xdist): one worker per CPU core, at most 4 (each worker holds
# its own torch, and every test uses one torch thread). `bash scripts/test.sh -n 0` runs them in
# one process; any other pytest arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
.venv/bin/python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 "$@"
