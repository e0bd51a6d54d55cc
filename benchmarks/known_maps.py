"""2-D problems whose flow map is known, trained the way a user would: ``flowmaps train --data
NAME --minutes M`` with every other setting automatic. Prints the one-step (and N-step) map
error relative to the data's scale, sqrt(E|X - X*|^2 / E|x1 - E x1|^2), on 20,000 noise draws.

    python benchmarks/known_maps.py --minutes 1.0

``gaussian``: an anisotropic 2-D Gaussian (the exact map is affine); ``gmm``: a mixture of
Gaussians (exact velocity in closed form, the map from an accurate RK4 solve).
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from cli_runs import train_via_cli


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--problems", nargs="+", default=["gaussian", "gmm"])
    args = ap.parse_args(argv)
    rows = []
    for name in args.problems:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            t0 = time.perf_counter()
            result, meta = train_via_cli(out, "--data", name, "--minutes", str(args.minutes))
            elapsed = time.perf_counter() - t0
        per_n = result["metrics"]["map"]
        rows.append((name, meta["budget"]["steps"], result["provenance"]["ema"],
                     [per_n[n]["map_rel_err"] for n in ("1", "2", "4", "16")], elapsed))
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"command: python benchmarks/known_maps.py --minutes {args.minutes}\n")
    print("| problem | steps | EMA chosen | rel. map error N=1 | N=2 | N=4 | N=16 | wall s (train + eval) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, steps, ema, errs, elapsed in rows:
        print(f"| {name} | {steps} | {ema} | " + " | ".join(f"{100 * e:.2f}%" for e in errs) + f" | {elapsed:.0f} |")


if __name__ == "__main__":
    main()
