#!/usr/bin/env bash
# The main job: set up, then train LSD on the paper's checkerboard on the CPU (a few minutes on
# 2 cores) and write samples for N = 1, 2, 4, 8, 16 with the KL table. Extra arguments go to
# 'flowmaps train', e.g. bash scripts/main.sh --set method=psd-m
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${OUT:-runs/checker-cpu-$(date +%Y%m%d-%H%M%S)}
.venv/bin/flowmaps train --preset checker-cpu --out "$out" "$@"
