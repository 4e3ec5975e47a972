#!/usr/bin/env bash
# Create .venv in the repository root (if missing) and install drum-env into it with every extra
# (`all`: training, the band, tuning; `track`, `zoo`, `docs`, `report`) and the `dev` tools.
# Safe to run again. torch is pinned to the CPU build first so that no resolver pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.drum-env-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU build of torch; on this project's machines it lies on disk.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[all,track,zoo,docs,report,dev]"
  touch "$stamp"
fi
