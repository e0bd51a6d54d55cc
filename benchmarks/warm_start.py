"""Starting from a flow at equal total compute (App. F.2, issue 9): LSD from scratch against a
flow-matching warm start, on the checkerboard with the ``checker-cpu`` recipe (KL) or on the 8x8
digits with ``digits-cpu`` (``fd_classifier``), every run given the same wall-clock budget through
the CLI (``--minutes``; flowmaps times its own step).

    python benchmarks/warm_start.py --minutes 4.5 --fm-share 0.15
    python benchmarks/warm_start.py --preset digits-cpu --minutes 6 --rows scratch init

Rows:
- ``scratch``: LSD from random weights, no curriculum;
- ``curriculum``: the preset's in-run curriculum (flow matching alone for the first 15% of the
  steps, then a growing largest jump);
- ``init``: a ``method=fm`` run for ``--fm-share`` of the budget, then LSD with
  ``train.init=<that run>`` for the rest (its map starts as one Euler step of the flow).

The metric at N = 1, 2, 4, 8, 16 with the weights evaluation picks: KL (appendix G.1, 64,000
samples) for the checkerboard, ``fd_classifier`` (1,797 samples) for the digits.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from cli_runs import train_via_cli

NO_CURRICULUM = ["--set", "loss.curriculum_fm=0", "--set", "loss.curriculum_ramp=0"]


METRIC = {"checker-cpu": "kl", "digits-cpu": "fd_classifier"}


def train(out: Path, preset: str, minutes: float, *extra: str) -> dict:
    result, meta = train_via_cli(out, "--preset", preset, "--minutes", f"{minutes:.4f}", *extra)
    metric = METRIC[preset]
    return {"metric": [result["metrics"]["map"][str(n)][metric] for n in (1, 2, 4, 8, 16)]
            if "map" in result["metrics"] else None,
            "steps": meta["budget"]["steps"], "ema": result["provenance"]["ema"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(METRIC), default="checker-cpu")
    ap.add_argument("--minutes", type=float, default=4.5)
    ap.add_argument("--fm-share", type=float, default=0.15)
    ap.add_argument("--rows", nargs="+", default=["scratch", "curriculum", "init"])
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.rows:
            t0 = time.perf_counter()
            if name == "scratch":
                r = train(root / name, args.preset, args.minutes, *NO_CURRICULUM)
                steps = str(r["steps"])
            elif name == "curriculum":
                r = train(root / name, args.preset, args.minutes)
                steps = str(r["steps"])
            else:
                fm = train(root / "fm", args.preset, args.fm_share * args.minutes, "--set", "method=fm", *NO_CURRICULUM)
                r = train(root / name, args.preset, (1 - args.fm_share) * args.minutes, "--set", f"train.init={root / 'fm'}",
                          *NO_CURRICULUM)
                steps = f"{fm['steps']} fm + {r['steps']} lsd"
            rows.append((name, steps, r["ema"], r["metric"], time.perf_counter() - t0))
            print(f"row done: {rows[-1]}", flush=True)
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; command: "
          f"python benchmarks/warm_start.py --preset {args.preset} --minutes {args.minutes} --fm-share {args.fm_share} "
          f"--rows {' '.join(args.rows)}\n")
    print(f"{METRIC[args.preset]} at N steps of the map\n")
    print("| start | steps | EMA chosen | N=1 | N=2 | N=4 | N=8 | N=16 | wall s (train + eval) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, steps, ema, values, wall in rows:
        print(f"| {name} | {steps} | {ema} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {wall:.0f} |")


if __name__ == "__main__":
    main()
