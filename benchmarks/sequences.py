"""A sequence example (issue 11): 1-D signals with a known distribution, trained as [L, C] arrays
through ``flowmaps train --data signals.npy`` (a DiT over groups of time steps, chosen
automatically), scored against held-out real signals.

Each signal is a sum of two sinusoids on L = 64 steps, with frequencies uniform in [1, 4] and
[4, 8] cycles, random phases and amplitudes uniform in [0.5, 1.5], plus 0.05 white noise; 4,000
signals, a quarter held out (``--set data.holdout=0.25``).

Distances to the held-out signals (2,000 samples each, in the signals' own scale):
- ``fd_array`` and ``sliced_w2_array``, the array metrics evaluation reports;
- ``spectrum``: the mean absolute difference of the average power spectra (log10), which sees
  whether the right frequencies are present;
- ``peak W1``: the 1-Wasserstein distance between the distributions of each signal's strongest
  frequency bin, which sees whether each signal is a sum of sinusoids rather than a blur.
A Gaussian with the training signals' mean and covariance is the baseline: it matches the first
two moments exactly, so ``fd_array`` cannot tell it from real signals, and the last two can.

    python benchmarks/sequences.py --minutes 4
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

from flowmaps.metrics import array_frechet_distance, sliced_wasserstein2
from flowmaps.run import load_run
from flowmaps.sampling import sample
from flowmaps.train.builders import build_data

LENGTH = 64


def signals(n: int, seed: int) -> np.ndarray:
    """[n, 64, 1] sums of two random sinusoids (module doc)."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)[None, :] / LENGTH
    out = np.zeros((n, LENGTH))
    for lo, hi in ((1, 4), (4, 8)):
        f, ph, a = rng.uniform(lo, hi, (n, 1)), rng.uniform(0, 2 * np.pi, (n, 1)), rng.uniform(0.5, 1.5, (n, 1))
        out += a * np.sin(2 * np.pi * f * t + ph)
    return (out + 0.05 * rng.standard_normal(out.shape))[..., None].astype(np.float32)


def spectrum_gap(x: np.ndarray, ref: np.ndarray) -> float:
    p = [np.log10(np.abs(np.fft.rfft(a[..., 0], axis=1)) ** 2 + 1e-8).mean(0) for a in (x, ref)]
    return float(np.abs(p[0] - p[1]).mean())


def peak_w1(x: np.ndarray, ref: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    peaks = [np.abs(np.fft.rfft(a[..., 0], axis=1))[:, 1:].argmax(1) + 1 for a in (x, ref)]
    return float(wasserstein_distance(peaks[0], peaks[1]))


def scores(x: np.ndarray, ref: np.ndarray) -> list[float]:
    tx, tr = torch.from_numpy(x), torch.from_numpy(ref)
    return [array_frechet_distance(tx, tr), sliced_wasserstein2(tx, tr), spectrum_gap(x, ref), peak_w1(x, ref)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--figure", default="benchmarks/results/sequences.png")
    args = ap.parse_args(argv)
    n_eval = 2000
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "signals.npy"
        np.save(data, signals(4000, 0))
        t0 = time.perf_counter()
        train_via_cli(Path(tmp) / "run", "--data", str(data), "--minutes", str(args.minutes), "--set", "data.holdout=0.25",
                      "--no-eval")
        train_s = time.perf_counter() - t0
        run = load_run(Path(tmp) / "run", ema="sigma_rel=0.1")
        held = build_data(run.cfg, "heldout")
        ref = held.images.raw(np.arange(held.size))
        train = build_data(run.cfg).images.raw(np.arange(build_data(run.cfg).size))
        rows = [("fresh real signals (the floor)", "", scores(signals(n_eval, 99), ref))]
        flat = train.reshape(len(train), -1).astype(np.float64)
        gauss = np.random.default_rng(1).multivariate_normal(flat.mean(0), np.cov(flat, rowvar=False), n_eval)
        rows.append(("Gaussian fit (mean and covariance of the training signals)", "", scores(gauss.reshape(-1, LENGTH, 1).astype(np.float32), ref)))
        noise = run.sigma * torch.randn(n_eval, *run.shape, generator=torch.Generator().manual_seed(0))
        figure = {"real": torch.from_numpy(ref[:6])}
        for n in (1, 2, 4):
            with torch.no_grad():
                x = run.to_data(sample(run.fm, noise, n)).numpy()
            rows.append((f"flowmaps DiT, N = {n}", str(n), scores(x, ref)))
            figure[f"N = {n}"] = torch.from_numpy(x[:6])
        if args.figure:
            from flowmaps.plots import plot_sequences

            plot_sequences(figure, args.figure)
    net = run.cfg.net
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"command: python benchmarks/sequences.py --minutes {args.minutes}\n")
    print(f"model: DiT width {net.width}, depth {net.depth}, patch {net.patch_size} ({LENGTH // net.patch_size} tokens), "
          f"{run.step} steps in {train_s:.0f} s, EMA {run.ema}; {held.size} held-out signals\n")
    print("| samples | network calls | fd_array | sliced_w2_array | spectrum gap (log10 power) | peak-frequency W1 (bins) |")
    print("|---|---|---|---|---|---|")
    for name, calls, vals in rows:
        print(f"| {name} | {calls} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    if args.figure:
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
