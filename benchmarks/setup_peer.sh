#!/usr/bin/env bash
# Install the peer (rectified-flow-pytorch, MIT) into .venv for benchmarks/peer_rectified_flow.py.
# Only its lsd_flow and mean_flow modules are loaded (they need einops); the package's __init__
# imports torchvision, which does not import beside the CPU torch wheel, so it is never imported.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet --no-deps "rectified-flow-pytorch==0.14.0" "einops>=0.8"
