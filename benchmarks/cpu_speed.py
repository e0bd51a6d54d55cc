"""Steps per second of the main job's training step on this machine: float32 against bfloat16
autocast, eager against ``torch.compile`` of the network, GELU against SiLU, all in one
process, interleaved.

    python benchmarks/cpu_speed.py --rounds 3 --steps 60

The step is LSD on the ``checker-cpu`` network (MLP 256 x 4), batch 2,048, eta 0.5, RAdam. Each
variant's time is the median over rounds of ``--steps`` steps after a warm-up. The loss of the
first step is printed too, so a variant that changes the numbers shows it.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.data import checkerboard
from flowmaps.nets import MLP


def make_step(precision: str, compiled: bool, batch: int, seed: int, activation: str = "gelu"):
    torch.manual_seed(seed)
    sigma = 0.5766
    net = MLP(dim=2, width=256, depth=4, sigma=sigma, activation=activation)
    fm = FlowMap(net, time_input="s_t")
    if compiled:
        fm.net = torch.compile(net)  # the network only: the JVP transform stays outside the graph
    obj = Objective(ObjectiveConfig(method="lsd", eta=0.5, weighting="none"), sigma)
    opt = torch.optim.RAdam(fm.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)

    def step() -> float:
        x = checkerboard(batch, g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = obj(fm, x, generator=g)
        opt.zero_grad(set_to_none=True)
        out.loss.float().backward()
        opt.step()
        return float(out.loss)

    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    variants = [("fp32", False, "gelu"), ("bf16", False, "gelu"), ("bf16", False, "silu")]
    if not args.no_compile:
        variants += [("fp32", True, "gelu"), ("bf16", True, "gelu"), ("bf16", True, "silu")]
    steps, first_loss, errors = {}, {}, {}
    for v in variants:
        try:
            steps[v] = make_step(v[0], v[1], args.batch, 0, v[2])
            first_loss[v] = steps[v]()
            for _ in range(5):
                steps[v]()
        except Exception as e:  # torch.compile may fail on a platform; report it, do not hide it
            errors[v] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            steps.pop(v, None)
    times: dict = {v: [] for v in steps}
    for _ in range(args.rounds):
        for v, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[v].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times[("fp32", False, "gelu")])
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}; command: python benchmarks/cpu_speed.py "
          f"--rounds {args.rounds} --steps {args.steps} --batch {args.batch}\n")
    print("| precision | network | activation | ms / step | steps / s | x fp32 eager GELU | first loss |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        if v in errors:
            print(f"| {v[0]} | {'compiled' if v[1] else 'eager'} | {v[2]} | failed: {errors[v]} | | | |")
            continue
        t = statistics.median(times[v])
        print(f"| {v[0]} | {'torch.compile' if v[1] else 'eager'} | {v[2]} | {t * 1000:.1f} | {1 / t:.1f} | {base / t:.2f} | "
              f"{first_loss[v]:.5f} |")


if __name__ == "__main__":
    main()
