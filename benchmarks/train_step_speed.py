"""The whole training step of real configurations, against its arithmetic floor and against an
earlier revision of flowmaps, interleaved on the same machine.

A step here is everything ``Trainer.train_step`` does: the batch, the noise and its pairing
(minibatch OT where the recipe has it), the objective forward, the backward, clipping, RAdam,
the EMAs and the EDM2 weight normalisation. Per configuration and revision it reports:
- wall ms per step (median of the rounds; each round is a fresh process that times ``--steps``
  steps after 3 warm-up steps; the revisions alternate round by round);
- FLOP per step (``torch.utils.flop_counter`` over one step: matrix products and convolutions);
- the arithmetic floor: those FLOP at the matrix-product rate measured once in the same run (the
  best of three timings of a 2048 x 256 x 256 product), in the step's precision;
- wall / floor, and ATen operations per step (``torch.profiler``).

    python benchmarks/train_step_speed.py                           # this tree against HEAD
    python benchmarks/train_step_speed.py --baseline 8df0b45 --configs main-job --rounds 5
    python benchmarks/train_step_speed.py --baseline none --configs main-job image-folder digits-cpu digits-dit-cpu

``--baseline REV`` checks REV out into a temporary git worktree and runs it with the same
Python; ``none`` times this tree alone. The image configuration trains on 400 generated 64 x 64
pictures (discs on gradients) as ``flowmaps train --data FOLDER`` would pick for them: 16 x 16,
the small EDM2 UNet, batch 128.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worktrees import ROOT, add_worktree, remove_worktree


def _discs(folder: Path, n: int = 400, size: int = 64) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) >= n:
        return folder
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        ang = rng.uniform(0, 2 * np.pi)
        g = np.cos(ang) * xx + np.sin(ang) * yy
        g = (g - g.min()) / (g.max() - g.min())
        img = rng.uniform(0, 1, 3) * (1 - g[..., None]) + rng.uniform(0, 1, 3) * g[..., None]
        cx, cy = rng.uniform(0.25, 0.75, 2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < rng.uniform(0.1, 0.22) ** 2] = rng.uniform(0, 1, 3)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _config(name: str, data_dir: Path):
    from flowmaps.config import build_config, preset

    if name == "main-job":
        return build_config(preset("checker-cpu"), {"train": {"steps": 8000}})
    if name in ("digits-cpu", "digits-dit-cpu"):
        return build_config(preset(name), {"train": {"minutes": None, "steps": 2000}})
    if name == "image-folder":  # what autoconfig picks for 400 pictures and a 3-minute budget
        return build_config({
            "method": "lsd", "sigma": 0.5,
            "data": {"name": "folder", "path": str(_discs(data_dir)), "resolution": 16},
            "net": {"kind": "edm2", "model_channels": 32, "channel_mult": [1, 2], "num_blocks": 1,
                    "attn_resolutions": [8], "channels_per_head": 32, "dropout": 0.0, "learned_weight": True},
            "loss": {"curriculum_fm": 0.15, "curriculum_ramp": 0.15},
            "train": {"steps": 2000, "batch_size": 128, "lr": 5e-3, "betas": [0.9, 0.99], "schedule": "wsd",
                      "grad_clip": 1.0, "ema": [], "ema_sigma_rel": [0.05, 0.1]},
        })
    raise SystemExit(f"unknown configuration {name!r}")


CONFIGS = ("main-job", "image-folder", "digits-cpu", "digits-dit-cpu")


def _matmul_rate(dtype) -> float:
    """FLOP/s of a 2048 x 256 x 256 matrix product in ``dtype``: the best of three timings."""
    import torch

    return max(_one_rate(torch, dtype) for _ in range(3))


def _one_rate(torch, dtype) -> float:
    a, b = torch.randn(2048, 256, dtype=dtype), torch.randn(256, 256, dtype=dtype)
    for _ in range(10):
        a @ b
    n, t0 = 100, time.perf_counter()
    for _ in range(n):
        a @ b
    return 2 * 2048 * 256 * 256 * n / (time.perf_counter() - t0)


def child(name: str, steps: int, data_dir: Path, counts: bool) -> dict:
    """Time ``steps`` training steps of configuration ``name`` with whatever flowmaps is importable."""

    from flowmaps.losses.curriculum import FULL
    from flowmaps.train.trainer import Trainer

    cfg = _config(name, data_dir)
    cfg.train.progress = False
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, Path(out) / "run")
        for _ in range(3):
            trainer.train_step(FULL)
        durations = []
        for _ in range(steps):
            t0 = time.perf_counter()
            trainer.train_step(FULL)
            durations.append(time.perf_counter() - t0)
        result = {"ms": 1e3 * statistics.median(durations), "precision": cfg.train.precision}
        if counts:
            from torch.profiler import ProfilerActivity, profile
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as fc:
                trainer.train_step(FULL)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer.train_step(FULL)
            result["flop"] = fc.get_total_flops()
            result["aten_ops"] = sum(1 for e in prof.events() if e.name.startswith("aten::"))
    return result


def _run_child(src: Path, name: str, steps: int, data_dir: Path, counts: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--steps", str(steps),
           "--data-dir", str(data_dir)] + (["--counts"] if counts else [])
    out = subprocess.run(cmd, env=env, cwd=str(src), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--baseline", default="HEAD", help="a git revision to compare against, or 'none'")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "flowmaps-discs-64"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--counts", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, Path(args.data_dir), args.counts)))
        return
    import platform

    import torch

    trees = {"this tree": ROOT}
    if args.baseline != "none":
        trees = {f"baseline {args.baseline}": add_worktree(args.baseline), **trees}
    print(f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"command: python {' '.join(sys.argv)}")
    rates = {"fp32": _matmul_rate(torch.float32), "bf16": _matmul_rate(torch.bfloat16)}
    print(f"2048 x 256 x 256 matrix product: {rates['fp32'] / 1e9:.0f} GFLOP/s in float32, "
          f"{rates['bf16'] / 1e9:.0f} in bfloat16 (the floors below use the step's precision)")
    results: dict = {"matmul_flops": rates}
    try:
        for name in args.configs:
            runs: dict[str, list[dict]] = {k: [] for k in trees}
            for r in range(args.rounds):
                for label, src in trees.items():
                    runs[label].append(_run_child(src, name, args.steps, Path(args.data_dir), counts=r == 0))
            print(f"\n{name}\n")
            print("| revision | step ms (median of rounds) | rounds | GFLOP | floor ms | wall / floor | ATen ops | speed-up |")
            print("|---|---|---|---|---|---|---|---|")
            first = None
            for label, rs in runs.items():
                ms = statistics.median(x["ms"] for x in rs)
                first = first or ms
                c = rs[0]
                floor = 1e3 * c["flop"] / rates[c["precision"]]
                each = " / ".join(f"{x['ms']:.1f}" for x in rs)
                print(f"| {label} ({c['precision']}) | {ms:.1f} | {each} | "
                      f"{c['flop'] / 1e9:.2f} | {floor:.1f} | {ms / floor:.1f} | {c['aten_ops']} | {first / ms:.2f}x |")
            results[name] = runs
    finally:
        for src in trees.values():
            remove_worktree(src)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
