#!/usr/bin/env bash
# The main job end to end on the built-in corpus: install into .venv (if needed), build the
# corpus, load it and print its summary table. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
.venv/bin/drum-env stats
