"""Table 1, checkerboard row, at CPU scale: LSD, ESD, PSD-M, PSD-U and the flow-matching ODE
baseline (Euler and Heun at the same NFE), with the same network, budget and seeds.

    python benchmarks/checker_table.py                     # the checker-cpu preset, 5000 steps each
    python benchmarks/checker_table.py --steps 20000 --width 512

Prints a markdown table of KL (appendix G.1 estimator, 64,000 samples, EMA 0.999 weights) at
N = 1, 2, 4, 8, 16 beside the paper's numbers and the perfect-sampler floor.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from flowmaps.config import build_config, preset
from flowmaps.evaluate import EvalOptions, generate
from flowmaps.metrics import checker_kl_floor
from flowmaps.pipeline import finish, start_training
from flowmaps.plots import plot_2d_grid

PAPER = {  # Table 1 (v2), checker KL, N = 1, 2, 4, 8, 16
    "LSD": [0.086, 0.077, 0.071, 0.070, 0.071],
    "ESD": [0.098, 0.092, 0.083, 0.082, 0.075],
    "PSD-M": [0.146, 0.089, 0.081, 0.072, 0.069],
    "PSD-U": [0.111, 0.107, 0.075, 0.073, 0.068],
}
STEPS = [1, 2, 4, 8, 16]


def run(method: str, solvers: list[str], args, root: Path, grid: dict) -> tuple[dict, float, float]:
    over = {"method": method, "seed": args.seed,
            "net": {"width": args.width, "depth": 4},
            "train": {"steps": args.steps, "progress": False, "ckpt_every": args.steps}}
    cfg = build_config(preset("checker-cpu"), over)
    t0 = time.perf_counter()
    tr = start_training(cfg, root / method)
    tr.fit()
    train_s = time.perf_counter() - t0
    done = finish(tr, EvalOptions(steps=STEPS, metrics=["kl"], solvers=solvers), report=False, audit=False)
    res, fm = done.result, tr.ema_flow_map(done.ema)
    noise = tr.sigma * torch.randn(20000, 2, generator=torch.Generator().manual_seed(cfg.eval.seed))
    for solver in solvers:
        label = method.upper() if solver == "map" else f"FM {solver}"
        grid[label] = {n: generate(fm, noise, n, solver, 20000) for n in STEPS}
    return res["metrics"], train_s, args.steps / train_s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--plot", help="write the samples grid (methods x N, paper Fig. 3) here")
    args = ap.parse_args(argv)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="checker-table-"))
    rows, timing, grid = {}, {}, {}
    for label, method, solvers in [("LSD", "lsd", ["map"]), ("ESD", "esd", ["map"]), ("PSD-M", "psd-m", ["map"]),
                                   ("PSD-U", "psd-u", ["map"]), ("FM", "fm", ["euler", "heun"])]:
        metrics, secs, rate = run(method, solvers, args, root, grid)
        timing[label] = (secs, rate)
        for solver in solvers:
            name = label if label != "FM" else f"FM ODE ({solver})"
            rows[name] = [metrics[solver][str(n)]["kl"] for n in STEPS]
        print(f"{label}: trained {args.steps} steps in {secs:.0f} s", file=sys.stderr, flush=True)
    floor, floor_std = checker_kl_floor(64000)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"command: python benchmarks/{Path(__file__).name} {' '.join(argv or sys.argv[1:])}")
    print(f"budget: {args.steps} steps x batch 2048, MLP {args.width} x 4, RAdam lr 2e-3, EMA 0.999, seed {args.seed} "
          f"(paper: 150k-250k steps x batch 100k, MLP 512 x 4)\n")
    print("| method | N=1 | N=2 | N=4 | N=8 | N=16 | train time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, vals in rows.items():
        key = name if name in timing else "FM"
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {timing[key][0]:.0f} |")
    for name, vals in PAPER.items():
        print(f"| paper {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " | |")
    print(f"| perfect sampler (floor) | {floor:.3f} ± {floor_std:.3f} | | | | | |")
    print("\nFM ODE rows: the flow-matching run's own velocity integrated with N steps (Heun uses 2N evaluations).")
    if args.plot:
        plot_2d_grid(grid, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "timing": timing, "floor": floor}, indent=2))


if __name__ == "__main__":
    main()
