"""Encoding with a flow map trained on the full square of times (issue 10): the round-trip error
of decode(encode(x)) at N = 1, 2, 4, the statistics of the codes, and interpolation between two
held-out inputs through their codes.

Models are trained the way a user would, with ``--set loss.full_square=true``:
- ``checker``: ``flowmaps train --data checker --minutes M`` (2-D);
- ``digits``: ``flowmaps train --preset digits-cpu --set data.holdout=0.25 --set train.steps=S``;
  the inputs are the held-out images, never trained on.

Round-trip error: sqrt(E|decode(encode(x)) - x|^2 / E|x - E x|^2), the error relative to the data's
scale. Codes: their mean and standard deviation (0 and 1 for an exact map).

    python benchmarks/encoding.py --problems checker digits --minutes 2 --steps 1500
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cli_runs import train_via_cli

from flowmaps.encode import decode, encode, slerp
from flowmaps.run import load_run
from flowmaps.train.builders import build_data

STEPS = (1, 2, 4)


def rel_err(y: torch.Tensor, x: torch.Tensor) -> float:
    return float(((y - x).flatten(1).pow(2).sum(1).mean() / (x - x.mean(0)).flatten(1).pow(2).sum(1).mean()).sqrt())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="+", choices=["checker", "digits"], default=["checker", "digits"])
    ap.add_argument("--minutes", type=float, default=2.0, help="checker: the training budget")
    ap.add_argument("--steps", type=int, default=1500, help="digits: training steps")
    ap.add_argument("--figure", default="benchmarks/results/encoding_digits_interpolation.png")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            out = Path(tmp) / name
            t0 = time.perf_counter()
            if name == "checker":
                train_via_cli(out, "--data", "checker", "--minutes", str(args.minutes), "--set", "loss.full_square=true")
            else:
                train_via_cli(out, "--preset", "digits-cpu", "--set", f"train.steps={args.steps}",
                              "--set", "data.holdout=0.25", "--set", "loss.full_square=true")
            train_s = time.perf_counter() - t0
            run = load_run(out)
            if name == "checker":
                x = build_data(run.cfg).reference(4000, seed=123)
            else:
                held = build_data(run.cfg, "heldout")
                x = held.images.batch(np.arange(held.size))[0]
            errs, stats = [], []
            for n in STEPS:
                z = encode(run.fm, x, n, run.sigma)
                errs.append(rel_err(decode(run.fm, z, n, run.sigma), x))
                stats.append((float(z.mean()), float(z.std())))
            rows.append((name, run.step, train_s, run.ema, x.shape[0], errs, stats))
            if name == "digits" and args.figure:
                from flowmaps.plots import plot_image_rows

                pairs = [(0, 100), (200, 300), (50, 400)]
                w = torch.linspace(0, 1, 9)
                figure = {}
                for a, b in pairs:
                    za, zb = encode(run.fm, x[[a]], 4, run.sigma), encode(run.fm, x[[b]], 4, run.sigma)
                    path = torch.cat([slerp(za, zb, float(wi)) for wi in w])
                    figure[f"{a} -> {b}"] = decode(run.fm, path, 4, run.sigma)
                plot_image_rows(figure, args.figure)
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; command: "
          f"python benchmarks/encoding.py --problems {' '.join(args.problems)} --minutes {args.minutes} --steps {args.steps}\n")
    print("| data | training | EMA | inputs | round-trip error N=1 | N=2 | N=4 | code mean / std N=1 | N=4 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, steps, secs, ema, n, errs, stats in rows:
        print(f"| {name} | {steps} steps, {secs:.0f} s | {ema} | {n} | " + " | ".join(f"{100 * e:.1f}%" for e in errs) +
              f" | {stats[0][0]:.3f} / {stats[0][1]:.3f} | {stats[2][0]:.3f} / {stats[2][1]:.3f} |")
    if "digits" in args.problems and args.figure:
        print(f"\nfigure: {args.figure} (held-out pairs, 9 points on the spherical path between their codes, N = 4)")


if __name__ == "__main__":
    main()
