#!/usr/bin/env bash
# Create .venv (once) and install flowmaps with its test extras. torch is pinned to the CPU build
# that installs in seconds here; a loose requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[test]"
