"""The DiT against the EDM2 UNet on the 8x8 digits at the same wall-clock budget (issue 11).

Both presets are trained the way a user would, ``flowmaps train --preset NAME --minutes M``
(the step count is measured from each network's own step time), and evaluated the same way:
``fd_classifier`` (the project classifier's Frechet distance; 1,797 samples) at N = 1, 2, 4, 8, 16
with the weights evaluation picks.

    python benchmarks/dit_digits.py --minutes 9
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from cli_runs import train_via_cli

PRESETS = {"digits-dit-cpu": "DiT (width 128, depth 6, 4 heads, patch 2, QK-norm)",
           "digits-cpu": "EDM2 UNet (32 channels, [1, 2])"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=9.0)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            t0 = time.perf_counter()
            result, meta = train_via_cli(Path(tmp) / name, "--preset", name, "--minutes", str(args.minutes))
            fd = [result["metrics"]["map"][str(n)]["fd_classifier"] for n in (1, 2, 4, 8, 16)]
            rows.append((name, meta["parameters"], meta["budget"]["steps"], meta["precision"], result["provenance"]["ema"], fd,
                         time.perf_counter() - t0))
            print(f"row done: {rows[-1]}", flush=True)
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; command: "
          f"python benchmarks/dit_digits.py --minutes {args.minutes}\n")
    print("| network | parameters | steps | precision | EMA chosen | fd_classifier N=1 | N=2 | N=4 | N=8 | N=16 | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, params, steps, prec, ema, fd, wall in rows:
        print(f"| {PRESETS[name]} (`{name}`) | {params:,} | {steps:,} | {prec} | {ema} | " +
              " | ".join(f"{v:.1f}" for v in fd) + f" | {wall:.0f} |")


if __name__ == "__main__":
    main()
