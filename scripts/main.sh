#!/usr/bin/env bash
# The main job: set up, then train LSD on the paper's checkerboard on the CPU for a 4.5-minute
# budget (the step count is measured from it), evaluate N = 1, 2, 4, 8, 16 with the KL table and
# write the HTML report. About 5.5 to 6.5 minutes on 2 cores. Extra arguments go to 'flowmaps train',
# e.g. bash scripts/main.sh --set method=psd-m, or --minutes 10.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${OUT:-runs/checker-cpu-$(date +%Y%m%d-%H%M%S)}
.venv/bin/flowmaps train --preset checker-cpu --minutes "${MINUTES:-4.5}" --out "$out" "$@"
