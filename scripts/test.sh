#!/usr/bin/env bash
# Install into .venv (if needed) and run the whole test suite. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
