"""``train.compile``: the whole training step eager against compiled, and what compiling costs
cold and from the cache, on real configurations (issue 31).

For each configuration, in fresh processes:
1. cold: an empty Inductor cache (``TORCHINDUCTOR_CACHE_DIR`` a new folder): the seconds of the
   first compiled step (compile included), the ATen operations one eager step dispatches, and
   what ``auto`` would have predicted from them (:data:`flowmaps.train.compiled.SECONDS_PER_OP`);
2. warm: the same cache again: the first compiled step's seconds;
3. speed: one process holding an eager and a compiled trainer, stepping them in interleaved
   rounds (``--rounds`` of ``--steps`` steps each; medians per round, then the median of rounds).
A step is everything ``Trainer.train_step`` does (draws, pairing, forward with tangents, loss,
backward, clipping, RAdam, EMAs, weight normalisation).

    .venv/bin/python benchmarks/compiled_step.py                        # every configuration
    .venv/bin/python benchmarks/compiled_step.py --configs main-job --rounds 6 --steps 10
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_step_speed import _config  # noqa: E402

CONFIGS = {
    "main-job": ("main-job", None),
    "image-folder-b32": ("image-folder", 32),
    "image-folder-b128": ("image-folder", 128),
    "digits-cpu": ("digits-cpu", None),
    "digits-dit-cpu": ("digits-dit-cpu", None),
}


def _trainer(name: str, compiled: bool, data_dir: Path):
    from flowmaps.train.trainer import Trainer

    base, batch = CONFIGS[name]
    cfg = _config(base, data_dir)
    cfg.train.progress = False
    cfg.train.compile = "on" if compiled else "off"
    if batch:
        cfg.train.batch_size = batch
    return Trainer(cfg, Path(tempfile.mkdtemp()) / "run")


def child_compile(name: str, data_dir: Path) -> dict:
    from flowmaps.losses.curriculum import FULL
    from flowmaps.train.compiled import SECONDS_PER_OP, count_ops

    eager = _trainer(name, False, data_dir)
    eager.train_step(FULL)
    ops = count_ops(lambda: eager.train_step(FULL))
    tr = _trainer(name, True, data_dir)
    t0 = time.perf_counter()
    tr.train_step(FULL)
    first = time.perf_counter() - t0
    return {"first_step_s": first, "ops": ops, "predicted_s": ops * SECONDS_PER_OP}


def child_speed(name: str, data_dir: Path, rounds: int, steps: int) -> dict:
    from flowmaps.losses.curriculum import FULL

    trs = {"eager": _trainer(name, False, data_dir), "compiled": _trainer(name, True, data_dir)}
    for tr in trs.values():
        for _ in range(3):
            tr.train_step(FULL)
    out: dict[str, list[float]] = {k: [] for k in trs}
    for _ in range(rounds):
        for k, tr in trs.items():
            ts = []
            for _ in range(steps):
                t0 = time.perf_counter()
                tr.train_step(FULL)
                ts.append(time.perf_counter() - t0)
            out[k].append(1e3 * statistics.median(ts))
    return out


def _child(args: list[str], cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    res = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "flowmaps-discs-64"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", choices=["compile", "speed"], help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    data_dir = Path(args.data_dir)
    if args.child == "compile":
        print(json.dumps(child_compile(args.config, data_dir)))
        return
    if args.child == "speed":
        print(json.dumps(child_speed(args.config, data_dir, args.rounds, args.steps)))
        return
    import torch

    print(f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"command: python {' '.join(sys.argv)}\n")
    print("| configuration | eager ms | compiled ms | speed-up | rounds (eager / compiled) | cold compile s | "
          "from the cache s | ATen ops | auto's prediction s |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    for name in args.configs:
        cache = tempfile.mkdtemp(prefix="inductor-")
        cold = _child(["--child", "compile", "--config", name, "--data-dir", str(data_dir)], cache)
        warm = _child(["--child", "compile", "--config", name, "--data-dir", str(data_dir)], cache)
        speed = _child(["--child", "speed", "--config", name, "--data-dir", str(data_dir), "--rounds", str(args.rounds),
                        "--steps", str(args.steps)], cache)
        e, c = statistics.median(speed["eager"]), statistics.median(speed["compiled"])
        rounds = " / ".join(f"{a:.0f}:{b:.0f}" for a, b in zip(speed["eager"], speed["compiled"]))
        print(f"| {name} | {e:.1f} | {c:.1f} | {e / c:.2f}x | {rounds} | {cold['first_step_s']:.1f} | "
              f"{warm['first_step_s']:.1f} | {cold['ops']} | {cold['predicted_s']:.0f} |", flush=True)
        results[name] = {"cold": cold, "warm": warm, "speed": speed}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
