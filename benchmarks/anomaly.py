"""Anomaly detection with a flow map (issue 10), against scikit-learn's classical detectors.

``--problem digits``: the standard one-class protocol on the 8x8 digits. For each class c, a
model is trained on class c only, the way a user would, with half of every class held out and
never trained on (``--set data.classes=[c] --set data.holdout=0.5``), by two networks:

- ``edm2``: the images, ``flowmaps train --preset digits-cpu`` with ``--edm2-steps`` steps;
- ``mlp``: the same pixels flattened into a point file (label in the last column),
  ``flowmaps train --data digits.npy --set data.label_column=64`` (every other setting automatic)
  with ``--mlp-steps`` steps of batch 256 (the automatic 2,048 is for 2-D sets of any size; a
  class has 90 training images here).

The held-out images of all ten classes (898) are scored with ``flowmaps.anomaly`` and the AUROC
is computed with class c as normal; the table averages it over the classes. Baselines on the same pixels (flattened, in [-1, 1]) and the same training images:
PCA reconstruction error (90% of the variance), k-nearest-neighbour distance (k = 5),
Isolation Forest and a one-class SVM (RBF, nu = 0.1), each with its training time.

``--problem checker``: a ``checker-cpu`` model scores points on a grid over [-1.2, 1.2]^2; the
AUROC separates points on the filled cells from the rest, and the figure shows the score.

    python benchmarks/anomaly.py --problem digits --edm2-steps 200 --mlp-steps 1000
    python benchmarks/anomaly.py --problem checker --minutes 2
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
from sklearn.metrics import roc_auc_score

from flowmaps.anomaly import ScoreSettings, anomaly_scores
from flowmaps.run import load_run
from flowmaps.train.builders import build_data

SCORES = {
    "restore 0.3-0.7 (N = 1)": ScoreSettings("restore", [0.3, 0.5, 0.7], 4, 1),
    "restore 0.05-0.2 (N = 1)": ScoreSettings("restore", [0.05, 0.1, 0.2], 4, 1),
    "denoise 0.1-0.3": ScoreSettings("denoise", [0.1, 0.2, 0.3], 4, 1),
    "denoise 0.02-0.1": ScoreSettings("denoise", [0.02, 0.05, 0.1], 4, 1),
}
"""Scores compared: the kind, then the strengths averaged over (4 noise draws each: 12 calls)."""


def baselines(train: np.ndarray, test: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (scores of ``test`` [n] (larger = more anomalous), training seconds)."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import NearestNeighbors
    from sklearn.svm import OneClassSVM

    out = {}
    t = time.perf_counter()
    pca = PCA(n_components=0.9, random_state=0).fit(train)
    fit = time.perf_counter() - t
    out["PCA reconstruction (90% variance)"] = (((pca.inverse_transform(pca.transform(test)) - test) ** 2).sum(1), fit)
    t = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=5).fit(train)
    fit = time.perf_counter() - t
    out["k-NN distance (k = 5)"] = (nn.kneighbors(test)[0].mean(1), fit)
    t = time.perf_counter()
    forest = IsolationForest(random_state=0).fit(train)
    fit = time.perf_counter() - t
    out["Isolation Forest"] = (-forest.score_samples(test), fit)
    t = time.perf_counter()
    svm = OneClassSVM(gamma="scale", nu=0.1).fit(train)
    fit = time.perf_counter() - t
    out["one-class SVM (RBF, nu = 0.1)"] = (-svm.score_samples(test), fit)
    return out


def train_one_class(net: str, c: int, root: Path, points: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """Train on class c (half of it; the other half of every class held out); (run folder, seconds)."""
    out = root / f"{net}{c}"
    split = ["--set", f"data.classes=[{c}]", "--set", "data.holdout=0.5", "--no-eval"]
    t0 = time.perf_counter()
    if net == "edm2":
        train_via_cli(out, "--preset", "digits-cpu", "--set", f"train.steps={args.edm2_steps}", *split)
    else:
        train_via_cli(out, "--data", str(points), "--set", "data.label_column=64", "--set", "train.minutes=null",
                      "--set", f"train.steps={args.mlp_steps}", "--set", "train.batch_size=256", *split)
    return out, time.perf_counter() - t0


def digits(args: argparse.Namespace, root: Path) -> None:
    from flowmaps.data.images import load_images

    full = load_images("digits")
    x_all, y_all = full.batch(np.arange(len(full)))
    points = root / "digits.npy"  # the pixels in [-1, 1], flattened, with the label last
    np.save(points, np.concatenate([x_all.flatten(1).numpy(), y_all[:, None].numpy()], 1))
    results: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    for c in args.classes:
        line = []
        for net in args.nets:
            out, train_s = train_one_class(net, c, root, points, args)
            run = load_run(out, ema=args.ema)
            held = build_data(run.cfg, "heldout")
            x, y = (held.images.batch(np.arange(held.size)) if held.images is not None else (held.points, held.labels))
            anomalous = (y != c).numpy()
            for name, settings in SCORES.items():
                key = f"flowmaps {net.upper()} ({run.step} steps): {name}"
                t = time.perf_counter()
                s = anomaly_scores(run.fm, x, run.sigma, settings, seed=c)
                results.setdefault(key, []).append(roc_auc_score(anomalous, s.numpy()))
                seconds.setdefault(key, []).append(train_s + time.perf_counter() - t)
                calls[key] = settings.network_calls()
                line.append(f"{net} {name.split(' (')[0]} {results[key][-1]:.3f}")
        normal = build_data(run.cfg)
        xtr = normal.images.batch(np.arange(normal.size))[0] if normal.images is not None else normal.points
        for name, (s, fit) in baselines(xtr.flatten(1).numpy(), x.flatten(1).numpy()).items():
            results.setdefault(name, []).append(roc_auc_score(anomalous, s))
            seconds.setdefault(name, []).append(fit)
            line.append(f"{name.split(' (')[0]} {results[name][-1]:.3f}")
        print(f"class {c} ({normal.size} training images): " + ", ".join(line), flush=True)
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"command: python benchmarks/anomaly.py --problem digits --nets {' '.join(args.nets)} --edm2-steps "
          f"{args.edm2_steps} --mlp-steps {args.mlp_steps} --ema {args.ema}\n")
    head = " | ".join(f"{c}" for c in args.classes)
    print(f"| method | network calls per image | mean AUROC | {head} | training s per class (+ scoring) |")
    print("|---|---|---|" + "---|" * len(args.classes) + "---|")
    for name, aucs in sorted(results.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"| {name} | {calls.get(name, '-')} | {np.mean(aucs):.3f} | " + " | ".join(f"{a:.3f}" for a in aucs) +
              f" | {np.mean(seconds[name]):.1f} |")


def checker(args: argparse.Namespace, root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowmaps.data.toy2d import checkerboard, checkerboard_density

    if args.run:
        run_dir = Path(args.run)
    else:
        run_dir = root / "checker"
        train_via_cli(run_dir, "--preset", "checker-cpu", "--minutes", str(args.minutes), "--no-eval")
    run = load_run(run_dir, ema=args.ema)
    lin = torch.linspace(-1.2, 1.2, 161)
    grid = torch.stack(torch.meshgrid(lin, lin, indexing="xy"), -1).reshape(-1, 2)
    on = (checkerboard_density(grid) > 0).numpy()
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"command: python benchmarks/anomaly.py --problem checker " +
          (f"--run {args.run} --ema {args.ema}" if args.run else f"--minutes {args.minutes}") + "\n")
    print("| score | network calls per point | AUROC (off-cell points anomalous) |\n|---|---|---|")
    panels = []
    for name, settings in SCORES.items():
        s = anomaly_scores(run.fm, grid, run.sigma, settings, batch_size=4096)
        print(f"| {name} | {settings.network_calls()} | {roc_auc_score(~on, s.numpy()):.3f} |")
        panels.append((name, s))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 4))
    data = checkerboard(5000, torch.Generator().manual_seed(0))
    axes[0].scatter(data[:, 0], data[:, 1], s=0.5, color="k")
    axes[0].set_title("training data")
    for ax, (name, s) in zip(axes[1:], panels):
        ax.imshow(np.log(s.reshape(161, 161).numpy()), origin="lower", extent=(-1.2, 1.2, -1.2, 1.2), cmap="magma")
        ax.set_title(name.split(" (")[0] + " (log score)", fontsize=9)
    for ax in axes:
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(args.figure, dpi=100)
    print(f"\nfigure: {args.figure}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", choices=["digits", "checker"], default="digits")
    ap.add_argument("--minutes", type=float, default=2.0, help="checker: the training budget")
    ap.add_argument("--nets", nargs="+", choices=["edm2", "mlp"], default=["edm2", "mlp"])
    ap.add_argument("--edm2-steps", type=int, default=200)
    ap.add_argument("--mlp-steps", type=int, default=1000)
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--ema", default="sigma_rel=0.1", help="the weights scored (runs trained with --no-eval choose none)")
    ap.add_argument("--run", help="checker: an existing run instead of training one")
    ap.add_argument("--figure", default="benchmarks/results/anomaly_checker.png")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        (digits if args.problem == "digits" else checker)(args, Path(tmp))


if __name__ == "__main__":
    main()
