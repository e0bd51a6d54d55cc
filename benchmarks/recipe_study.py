"""Recipe study for the main job's budget: which schedule, EMA, eta, network, time sampling,
loss weight and batch size give the best checkerboard KL in a few minutes on 2 CPU cores.

Each variant is the ``checker-cpu`` preset with a few keys changed, trained through flowmaps'
own Trainer for a fixed number of steps (so the result does not depend on how loaded the
machine is; the step count stands for the budget, see ``--steps``), then scored by the
appendix G.1 KL at N = 1, 2, 4, 8, 16 on 64,000 samples with the weights that evaluation picks
(``eval.ema=auto``: raw, tracked and reconstructed EMAs on a separate quick KL), and with the raw
weights. One JSON line per variant goes to ``--out``; ``--table`` prints the markdown table.

    python benchmarks/recipe_study.py --steps 4000 --threads 1 --variants base wsd eta50 ... --out results/recipe.jsonl
    python benchmarks/recipe_study.py --table results/recipe.jsonl
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
from flowmaps.ema_selection import choose_weights
from flowmaps.evaluate import EvalOptions, evaluate_run
from flowmaps.train.trainer import Trainer

STEPS_N = [1, 2, 4, 8, 16]

# each variant: (what it changes, overrides on top of the checker-cpu preset)
OLD = {"train": {"schedule": "inverse_sqrt", "warmup": 0.0, "lr_decay_steps": 1500, "ema": [0.999],
                 "ema_sigma_rel": [], "ema_snapshots": 0},
       "loss": {"eta": 0.75, "weighting": "constant", "time_sampling": "uniform"}, "eval": {"ema": 0.999}}
VARIANTS: dict[str, tuple[str, dict]] = {
    "old": ("the previous preset: inverse-sqrt lr, EMA 0.999, eta 0.75, uniform times", OLD),
    "old-raw": ("the previous preset, raw weights", {**OLD, "eval": {"ema": "raw"}}),
    "wsd75": ("WSD lr (30% decay), auto EMA, eta 0.75", {"loss": {"eta": 0.75}}),
    "cos75": ("cosine lr, auto EMA, eta 0.75", {"loss": {"eta": 0.75}, "train": {"schedule": "cosine"}}),
    "default": ("the new default (see the preset)", {}),
    "eta25": ("eta 0.25", {"loss": {"eta": 0.25}}),
    "eta50": ("eta 0.5", {"loss": {"eta": 0.5}}),
    "cosine": ("cosine lr", {"train": {"schedule": "cosine"}}),
    "decay50": ("WSD with 50% decay", {"train": {"decay": 0.5}}),
    "decay15": ("WSD with 15% decay", {"train": {"decay": 0.15}}),
    "lr1e-3": ("lr 1e-3", {"train": {"lr": 1e-3}}),
    "lr4e-3": ("lr 4e-3", {"train": {"lr": 4e-3}}),
    "logitn": ("logit-normal times (0, 1)", {"loss": {"time_sampling": "logit_normal"}}),
    "adapt1": ("adaptive loss weight p = 1 (MeanFlow)", {"loss": {"weighting": "adaptive", "adaptive_power": 1.0}}),
    "adapt05": ("adaptive loss weight p = 0.5", {"loss": {"weighting": "adaptive", "adaptive_power": 0.5}}),
    "logitn-adapt1": ("logit-normal times and adaptive weight p = 1 (MeanFlow's recipe)",
                      {"loss": {"time_sampling": "logit_normal", "weighting": "adaptive", "adaptive_power": 1.0}}),
    "w128": ("MLP width 128", {"net": {"width": 128}}),
    "w384": ("MLP width 384", {"net": {"width": 384}}),
    "d3": ("MLP depth 3", {"net": {"depth": 3}}),
    "xf4": ("Fourier features of the point (L = 4)", {"net": {"x_features": 4}}),
    "xf6": ("Fourier features of the point (L = 6)", {"net": {"x_features": 6}}),
    "xf6-tf8": ("Fourier features of the point (L = 6) and times (K = 8)", {"net": {"x_features": 6, "time_features": 8}}),
    "xf6-75": ("Fourier features of the point (L = 6), eta 0.75", {"net": {"x_features": 6}, "loss": {"eta": 0.75}}),
    "logitn75": ("logit-normal times (0, 1), eta 0.75", {"loss": {"time_sampling": "logit_normal", "eta": 0.75}}),
    "w384-75": ("MLP width 384, eta 0.75", {"net": {"width": 384}, "loss": {"eta": 0.75}}),
    "adapt05-75": ("adaptive loss weight p = 0.5, eta 0.75", {"loss": {"weighting": "adaptive", "adaptive_power": 0.5, "eta": 0.75}}),
    "lr1e-3-75": ("lr 1e-3, eta 0.75", {"train": {"lr": 1e-3}, "loss": {"eta": 0.75}}),
    "tf8": ("Fourier time features (K = 8)", {"net": {"time_features": 8}}),
    "sdt": ("time inputs (s, t - s)", {"net": {"time_input": "s_dt"}}),
    "tf8-sdt": ("Fourier time features (K = 8) of (s, t - s)", {"net": {"time_features": 8, "time_input": "s_dt"}}),
    "b1024": ("batch 1024", {"train": {"batch_size": 1024}}),
    "b4096": ("batch 4096", {"train": {"batch_size": 4096}}),
    "fp32": ("float32 instead of bfloat16", {"train": {"precision": "fp32"}}),
    "fp32-75": ("float32 instead of bfloat16, eta 0.75", {"train": {"precision": "fp32"}, "loss": {"eta": 0.75}}),
    "b1024-75": ("batch 1024, eta 0.75", {"train": {"batch_size": 1024}, "loss": {"eta": 0.75}}),
    "b1024-50": ("batch 1024, eta 0.5", {"train": {"batch_size": 1024}, "loss": {"eta": 0.5}}),
    "b4096-75": ("batch 4096, eta 0.75", {"train": {"batch_size": 4096}, "loss": {"eta": 0.75}}),
    "b8192-75": ("batch 8192, eta 0.75", {"train": {"batch_size": 8192}, "loss": {"eta": 0.75}}),
    "b4096-lr4": ("batch 4096, lr 4e-3, eta 0.75", {"train": {"batch_size": 4096, "lr": 4e-3}, "loss": {"eta": 0.75}}),
    # the optimiser and curriculum round (relative to the current preset: lr 4e-3, betas (0.9, 0.95),
    # curriculum 0.15 / 0.15); "pre-opt" is the preset before that round
    "pre-opt": ("lr 2e-3, betas (0.9, 0.999), no curriculum (the preset before this round)",
                {"train": {"lr": 2e-3, "betas": [0.9, 0.999]}, "loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "lr4-b999": ("lr 4e-3, betas (0.9, 0.999), no curriculum",
                 {"train": {"lr": 4e-3, "betas": [0.9, 0.999]}, "loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "lr8-b999": ("lr 8e-3, betas (0.9, 0.999), no curriculum",
                 {"train": {"lr": 8e-3, "betas": [0.9, 0.999]}, "loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "lr4-b99": ("lr 4e-3, beta2 0.99, no curriculum",
                {"train": {"lr": 4e-3, "betas": [0.9, 0.99]}, "loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "lr8-b99": ("lr 8e-3, beta2 0.99, no curriculum",
                {"train": {"lr": 8e-3, "betas": [0.9, 0.99]}, "loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "lr4-b95": ("lr 4e-3, beta2 0.95, no curriculum", {"loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "lr4-b90": ("lr 4e-3, beta2 0.9, no curriculum",
                {"train": {"betas": [0.9, 0.9]}, "loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.0}}),
    "cur30-20": ("curriculum: flow matching 30%, jump ramp 20%", {"loss": {"curriculum_fm": 0.3, "curriculum_ramp": 0.2}}),
    "cur0-30": ("curriculum: jump ramp 30% only", {"loss": {"curriculum_fm": 0.0, "curriculum_ramp": 0.3}}),
    "xf3": ("Fourier features of the point (L = 3)", {"net": {"x_features": 3}}),
    "w320": ("MLP width 320 (run at 1,800 steps: about the time of 2,500 at width 256)", {"net": {"width": 320}}),
    "eta65": ("eta 0.65", {"loss": {"eta": 0.65}}),
    "ugap": ("off-diagonal jump t - s uniform (large jumps as often as small)", {"loss": {"time_sampling": "uniform_gap"}}),
    "meanflow": ("MeanFlow with the same recipe", {"method": "meanflow"}),
    "psd-m": ("PSD-M with the same recipe", {"method": "psd-m"}),
}


def run_variant(name: str, steps: int, seed: int, minutes: float | None = None) -> dict:
    desc, over = VARIANTS[name]
    base = preset("checker-cpu")
    layer = {**over, "seed": seed,
             "train": {**over.get("train", {}), "steps": steps, "minutes": minutes, "progress": False, "ckpt_every": 10**9}}
    if "precision" not in layer["train"]:
        layer["train"]["precision"] = "bf16"
    cfg = build_config(base, layer)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        trainer = Trainer(cfg, out)
        trainer.fit()
        train_s = time.perf_counter() - t0
        chosen, sel = choose_weights(trainer.fm, trainer.ema.flat(), cfg, trainer.source, trainer.sigma,
                                     trainer.source.shape, out)
        rows = {}
        for label, ema in (("chosen", chosen), ("raw", "raw")):
            res = evaluate_run(trainer.as_run(ema), trainer.source, EvalOptions(steps=STEPS_N, metrics=["kl"]))
            rows[label] = [res["metrics"]["map" if cfg.method != "fm" else "euler"][str(n)]["kl"] for n in STEPS_N]
    return {"variant": name, "what": desc, "steps": cfg.train.steps, "minutes": minutes, "seed": seed,
            "train_seconds": round(train_s, 1),
            "ema": chosen, "kl": rows["chosen"], "kl_raw": rows["raw"],
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = ["| variant | what | seed | steps (budget) | EMA chosen | " + " | ".join(f"N={n}" for n in STEPS_N) + " | raw N=1 | raw N=4 | s |",
             "|---|---|---|---|---|" + "---|" * len(STEPS_N) + "---|---|---|"]
    for r in rows:
        kl = " | ".join(f"{v:.3f}" for v in r["kl"])
        budget = f" ({r['minutes']:g} min)" if r.get("minutes") else ""
        lines.append(f"| {r['variant']} | {r['what']} | {r.get('seed', 0)} | {r['steps']}{budget} | {r['ema']} | {kl} | {r['kl_raw'][0]:.3f} | "
                     f"{r['kl_raw'][2]:.3f} | {r['train_seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--minutes", type=float, help="a wall-clock budget per variant instead of --steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, help="append one JSON line per variant here")
    ap.add_argument("--table", type=Path, help="print the markdown table of a results file and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    if not args.variants:
        sys.exit("name --variants to run (or --table FILE)")
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.variants:
        row = run_variant(name, args.steps, args.seed, args.minutes)
        print(json.dumps(row), flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
