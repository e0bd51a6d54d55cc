"""All GPU checks in one script, for a 15-minute accelerator lease; run them in parts.

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT --only correctness throughput
    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT --only fashion checker --minutes 1.5

On an H200 (2026-11-29) correctness took 11 s and throughput 362 s (its steps are bound by the
host: see benchmarks/README.md); fashion takes 3 x (--minutes + its evaluation), checker
--minutes + its evaluation. A section that fails records its error and the next one runs.

1. CUDA correctness: every JVP backend against central differences (float64) on a small EDM2
   UNet, and one LSD step of the CIFAR-10 UNet under bfloat16 (the paper's 64x64 precision).
2. Throughput: one training step of every method in benchmarks/step_cost.py with the CIFAR-10
   EDM2 UNet at batch 128, in float32 and bfloat16 (time and peak memory, ratios to FM).
3. Fashion-MNIST (real images, read from --fashion, 60k x 28x28): LSD, PSD-M and flow matching,
   ``--minutes`` each, then 10,000 samples at N = 1, 2, 4, 8 (the FM run with Euler at equal
   NFE) saved as uint8 .npz for FID on a CPU, and the classifier-feature distance computed here.
4. The paper's checker configuration (MLP 512 x 4, batch 100k) for ``--minutes``: KL at N = 1..16.
5. ``compiled`` (issue 31): the whole training step eager against ``train.compile=on`` for the
   CIFAR-10 UNet (batch 128) and DiT-B/2 (batch 64), FM, LSD and ESD, bfloat16: the first
   compiled step's seconds (compile included) and the median of ``--compiled-steps`` steps each.
   ``--device cpu --tiny`` runs the same code on small networks on a CPU (a smoke test that the
   section runs to its end before a lease is spent on it).
Writes gpu_results.json and the sample files under --out.

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT --only compiled
    PYTHONPATH=. python3 benchmarks/gpu_check.py --out /tmp/gc --only compiled --device cpu --tiny
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig, check_jvp
from flowmaps.config import build_config, preset
from flowmaps.evaluate import EvalOptions, evaluate_run, generate
from flowmaps.nets.edm2 import PRESETS, EDM2Config, EDM2UNet
from flowmaps.pipeline import finish, start_training


def correctness() -> dict:
    cfg = EDM2Config(img_resolution=16, img_channels=1, model_channels=32, channel_mult=[1, 2], num_blocks=1,
                     attn_resolutions=[8], channels_per_head=32, dropout=0.0)
    torch.manual_seed(0)
    net = EDM2UNet(cfg)
    with torch.no_grad():
        net.out_gain.fill_(0.5)
    fm = FlowMap(net, "s_dt").cuda().double()
    x = torch.randn(4, 1, 16, 16, device="cuda", dtype=torch.float64)
    s = torch.rand(4, device="cuda", dtype=torch.float64) * 0.5
    t = s + 0.4
    rep = check_jvp(lambda tt: fm.X(x, s, tt), (t,), (torch.ones_like(t),))
    big = FlowMap(EDM2UNet(PRESETS["cifar10"], compute_dtype=torch.bfloat16), "s_dt").cuda()
    out = Objective(ObjectiveConfig(method="lsd"), 0.5)(big, torch.randn(16, 3, 32, 32, device="cuda"))
    out.loss.backward()
    ok = bool(torch.isfinite(out.loss)) and all(torch.isfinite(p.grad).all() for p in big.parameters() if p.grad is not None)
    return {"jvp_relative_error_cuda_float64": rep.relative_error, "bf16_lsd_step_finite": ok}


def throughput(out: Path) -> dict:
    res = {}
    for dtype in ("fp32", "bf16"):
        f = out / f"step_cost_{dtype}.json"
        subprocess.run([sys.executable, "benchmarks/step_cost.py", "--device", "cuda", "--nets", "unet-cifar10", "dit-b2",
                        "--dtype", dtype, "--rounds", "3", "--steps", "5", "--json", str(f)], check=True)
        res[dtype] = json.loads(f.read_text())
    return res


def train_minutes(over: dict, name: str, minutes: float, out: Path):
    """Train for a wall-clock budget (flowmaps measures its step time and fits the schedule)."""
    cfg = build_config(over, {"train": {"minutes": minutes}})
    tr = start_training(cfg, out / name)
    t0 = time.perf_counter()
    tr.fit()
    return tr, tr.step / (time.perf_counter() - t0)


def fashion(out: Path, minutes: float, fashion_path: str, num: int) -> dict:
    res = {}
    base = {"sigma": 0.5, "data": {"name": "fashion-mnist", "path": fashion_path, "cache": str(out / "cache")},
            "net": {"kind": "edm2", "model_channels": 64, "channel_mult": [1, 2, 2], "num_blocks": 2,
                    "attn_resolutions": [7], "dropout": 0.0, "learned_weight": True},
            "train": {"batch_size": 256, "lr": 1e-2, "schedule": "wsd", "grad_clip": 1.0, "precision": "auto",
                      "ema_sigma_rel": [0.05, 0.1], "ema_snapshots": 16, "progress": False, "ckpt_every": 10**9,
                      "log_every": 100},
            "eval": {"ema": "auto", "num_samples": num, "batch_size": 1000, "steps": [1, 2, 4, 8],
                     "metrics": ["fd_classifier"]}}
    for method, solver in (("lsd", "map"), ("psd-m", "map"), ("fm", "euler")):
        tr, rate = train_minutes({**base, "method": method}, f"fashion-{method}", minutes, out)
        done = finish(tr, EvalOptions(solvers=[solver]), report=False, audit=False)
        ema, r, fm = done.ema, done.result, tr.ema_flow_map(done.ema)
        noise = 0.5 * torch.randn(num, 1, 28, 28, generator=torch.Generator().manual_seed(12345))
        samples = {f"N{n}": ((generate(fm, noise, n, solver, 1000).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
                   for n in (1, 2, 4, 8)}
        np.savez_compressed(out / f"fashion-{method}-samples.npz", **samples)
        res[method] = {"steps": tr.step, "steps_per_s": rate, "solver": solver, "ema": ema, **r}
    return res


def checker(out: Path, minutes: float, num: int) -> dict:
    over = {**preset("checker"), "train": {**preset("checker")["train"], "progress": False, "ckpt_every": 10**9},
            "eval": {**preset("checker")["eval"], "num_samples": min(num * 64 // 10, 64000)}}
    tr, rate = train_minutes(over, "checker", minutes, out)
    r = evaluate_run(tr.as_run(0.999), tr.source, EvalOptions(metrics=["kl"]))
    return {"steps": tr.step, "steps_per_s": rate, **r}


def compiled(out: Path, device: str, tiny: bool, steps: int) -> dict:
    """Eager against compiled training steps through the Trainer (train.compile off / on)."""
    from flowmaps.train.trainer import Trainer

    if tiny:
        nets = {"unet": {"kind": "edm2", "model_channels": 8, "channel_mult": [1], "num_blocks": 1,
                         "attn_resolutions": [], "channels_per_head": 8, "dropout": 0.0},
                "dit": {"kind": "dit", "width": 32, "depth": 1, "heads": 2, "patch_size": 4}}
        shape, batch = (1, 16, 16), {"unet": 32, "dit": 32}
    else:
        nets = {"unet": {**preset("cifar10")["net"]}, "dit": {"kind": "dit", "width": 768, "depth": 12, "heads": 12,
                                                                "patch_size": 2}}
        shape, batch = (3, 32, 32), {"unet": 128, "dit": 64}
    arrays = out / "compiled-images.npy"  # the step's cost does not depend on what the pictures show
    np.save(arrays, np.random.default_rng(0).uniform(-1, 1, (512, *shape)).astype(np.float32))
    data = {"name": "array", "path": str(arrays)}
    res: dict = {}
    for net, arch in nets.items():
        for method in ("fm", "lsd", "esd"):
            row = {}
            for mode in ("off", "on"):
                cfg = build_config({"method": method, "sigma": 0.5, "data": data, "net": arch,
                                    "train": {"steps": 10**6, "batch_size": batch[net], "precision": "bf16",
                                              "device": device, "compile": mode, "progress": False,
                                              "ckpt_every": 10**9, "ema_snapshots": 0}})
                tr = Trainer(cfg, out / f"compiled-{net}-{method}-{mode}")
                t0 = time.perf_counter()
                tr.train_step()
                tr._sync()
                first = time.perf_counter() - t0
                times = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    tr.train_step()
                    tr._sync()
                    times.append(time.perf_counter() - t0)
                row[mode] = {"first_step_s": first, "median_ms": 1e3 * float(np.median(times))}
            row["speedup"] = row["off"]["median_ms"] / row["on"]["median_ms"]
            res[f"{net}-{method}"] = row
            print(f"compiled {net} {method}: eager {row['off']['median_ms']:.1f} ms, compiled {row['on']['median_ms']:.1f} "
                  f"ms ({row['speedup']:.2f}x), compile {row['on']['first_step_s']:.0f} s", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--fashion", default=".data/fashion-mnist")
    ap.add_argument("--samples", type=int, default=10000, help="Fashion-MNIST samples per N (checker: 6.4x, at most 64k)")
    ap.add_argument("--only", nargs="*", default=["correctness", "throughput", "fashion", "checker"],
                    help="sections: correctness throughput fashion checker compiled")
    ap.add_argument("--device", default="cuda", help="the compiled section's device (cpu with --tiny: a smoke test)")
    ap.add_argument("--tiny", action="store_true", help="the compiled section on small networks")
    ap.add_argument("--compiled-steps", type=int, default=10)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    results = {"device": torch.cuda.get_device_name() if cuda else "cpu (smoke test)", "torch": torch.__version__}
    steps = {"correctness": lambda: correctness(), "throughput": lambda: throughput(out),
             "fashion": lambda: fashion(out, args.minutes, args.fashion, args.samples),
             "checker": lambda: checker(out, args.minutes, args.samples),
             "compiled": lambda: compiled(out, args.device, args.tiny, args.compiled_steps)}
    for name in args.only:
        if name in ("correctness", "throughput") and not cuda:
            print(f"{name}: skipped, no CUDA device", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            results[name] = steps[name]()
        except Exception as exc:  # one failed section must not cost the lease the others
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
        (out / "gpu_results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
