"""Guided flow maps (App. F.5) against the exact guided map of a labelled Gaussian mixture.

The problem (``flowmaps.data.toy2d.two_class_problem``): two classes, one 2-D Gaussian each;
the conditional, unconditional and guided velocities q_t = b(null) + alpha (b(c) - b(null)) are
closed-form, and an RK4 solve of q (float64, 128 steps) is the exact guided map. A guided MLP is
trained by flowmaps' own Trainer on ``data.name=twoclass`` with the main job's recipe (MLP
256 x 4 SiLU, RAdam lr 4e-3, betas (0.9, 0.95), WSD schedule, the spike guard and recovery; the
paper's independent pairing, whose map is the exact one here; label dropout, alpha ~ U[0,
alpha_max]) for ``--steps`` steps per method, in float32, then the raw weights' (the schedule
ends at zero)
one-step map X_{0,1}(x; alpha, c), sampled as ``flowmaps.sample`` does (alpha = 0 with the null
label), is compared with the exact one at alpha = 0 (unconditional), 1 (conditional), 2 and 3 for
each class: the error relative to the data's scale,
sqrt(E|X - X*|^2 / E|x1 - E x1|^2), on 4,000 noise draws, and the same for the null label.

    python benchmarks/guided_maps.py --steps 3000 --methods lsd esd psd-m
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from flowmaps import FlowMap, sample
from flowmaps.config import build_config, preset
from flowmaps.data.toy2d import two_class_problem
from flowmaps.train.trainer import Trainer

ALPHAS = (0.0, 1.0, 2.0, 3.0)


def train(method: str, steps: int, batch: int, dropout: float, alpha_max: float, seed: int = 0,
          lr: float | None = None) -> tuple[FlowMap, float, list]:
    """A guided map trained by the Trainer; returns it, the training seconds and its recoveries."""
    layer = preset("checker-cpu")
    layer.update({"method": method, "sigma": 1.0, "seed": seed,
                  "data": {"name": "twoclass", "conditional": True, "label_dropout": dropout}})
    layer["loss"].update({"guidance_max": alpha_max, "coupling": "independent"})
    layer["train"].update({"steps": steps, "batch_size": batch, "precision": "fp32", "progress": False,
                           "ema_sigma_rel": [], "ema_snapshots": 0, "ckpt_every": max(steps // 8, 1)})
    if lr is not None:
        layer["train"]["lr"] = lr
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(build_config(layer), Path(tmp) / method)
        t0 = time.perf_counter()
        tr.fit()
        secs = time.perf_counter() - t0
        return tr.fm.eval().requires_grad_(False), secs, tr.recoveries


def map_errors(fm: FlowMap, n: int = 4000, seed: int = 1) -> dict[str, list[float]]:
    """Relative one-step errors: {"alpha=a": [per class], "null": [one]}."""
    prob = two_class_problem(1.0)
    g = torch.Generator().manual_seed(seed)
    data, _ = prob.sample_data(200_000, g)
    scale = float((data - data.mean(0)).square().sum(1).mean().sqrt())
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    s, t = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)

    def err(y: torch.Tensor, alpha: float) -> float:
        exact = prob.X(x0, s, t, y, alpha, steps=128)
        got = sample(fm, x0.float(), 1, labels=y, guidance=alpha).double()
        return float((got - exact).square().sum(1).mean().sqrt()) / scale

    out = {f"alpha={a:g}": [err(torch.full((n,), c), a) for c in range(prob.num_classes)] for a in ALPHAS}
    out["null"] = [err(torch.full((n,), prob.num_classes), 1.0)]  # the unconditional map, as alpha = 0 samples it
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["lsd", "esd", "psd-m"])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--alpha-max", type=float, default=3.0)
    ap.add_argument("--lr", type=float, help="learning rate (default: the main job's, 4e-3)")
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; command: "
          f"python benchmarks/guided_maps.py --methods {' '.join(args.methods)} --steps {args.steps} --batch {args.batch} "
          f"--dropout {args.dropout} --alpha-max {args.alpha_max:g}" + (f" --lr {args.lr:g}" if args.lr else "") + "\n")
    head = " | ".join(f"alpha = {a:g}" for a in ALPHAS)
    print(f"| method | train s | recoveries | {head} | null label | worst |")
    print("|---|---|---|" + "---|" * len(ALPHAS) + "---|---|")
    for method in args.methods:
        fm, secs, recoveries = train(method, args.steps, args.batch, args.dropout, args.alpha_max, lr=args.lr)
        errs = map_errors(fm)
        cells = " | ".join(" / ".join(f"{100 * e:.1f}%" for e in errs[f"alpha={a:g}"]) for a in ALPHAS)
        worst = max(max(v) for v in errs.values())
        print(f"| {method} | {secs:.0f} | {len(recoveries)} | {cells} | {100 * errs['null'][0]:.1f}% | {100 * worst:.1f}% |",
              flush=True)


if __name__ == "__main__":
    main()
