"""The cost of a guided training step (App. F.5) over an unguided class-conditional one.

Same network, batch, labels and label dropout; the guided step adds the guidance-scale input,
self-distils the guided velocity (a doubled, gradient-free teacher call: the conditional and
the unconditional velocity) and regresses half of the diagonal on the guided target (another
doubled, gradient-free call on those rows). Interleaved rounds, median per variant.

    python benchmarks/guided_cost.py --rounds 5 --steps 5
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.nets import MLP
from flowmaps.nets.edm2 import EDM2Config, EDM2UNet

NETS = {
    "mlp": (lambda g: (MLP(dim=2, width=256, depth=4, num_classes=10, guidance=g), "s_t"), (2,), 2048),
    "unet-small": (lambda g: (EDM2UNet(EDM2Config(img_resolution=8, img_channels=1, model_channels=32, channel_mult=[1, 2],
                                                  num_blocks=1, attn_resolutions=[4], channels_per_head=32, dropout=0.0,
                                                  num_classes=10, guidance=g)), "s_dt"), (1, 8, 8), 128),
}


def make_step(net_name: str, method: str, guided: bool):
    build, shape, batch = NETS[net_name]
    torch.manual_seed(0)
    net, time_input = build(guided)
    fm = FlowMap(net, time_input)
    cfg = ObjectiveConfig(method=method, weighting="none", label_dropout=0.1, guidance_max=4.0 if guided else 0.0)
    obj = Objective(cfg, sigma=0.5, num_classes=10)
    opt = torch.optim.RAdam(fm.parameters(), lr=1e-4)
    x1 = torch.randn(batch, *shape)
    y = torch.arange(batch) % 10
    gen = torch.Generator().manual_seed(0)

    def step():
        out = obj(fm, x1, {"y": y}, generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["mlp", "unet-small"], choices=sorted(NETS))
    ap.add_argument("--methods", nargs="+", default=["lsd", "esd", "psd-m"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; command: "
          f"python benchmarks/guided_cost.py --nets {' '.join(args.nets)} --methods {' '.join(args.methods)} "
          f"--rounds {args.rounds} --steps {args.steps}\n")
    print("| network | method | conditional step (ms) | guided step (ms) | guided / conditional |")
    print("|---|---|---|---|---|")
    for net_name in args.nets:
        for method in args.methods:
            steps = {g: make_step(net_name, method, g) for g in (False, True)}
            for s in steps.values():
                s()
                s()
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for g, s in steps.items():
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        s()
                    times[g].append((time.perf_counter() - t0) / args.steps)
            plain, guided = statistics.median(times[False]), statistics.median(times[True])
            print(f"| {net_name} (batch {NETS[net_name][2]}) | {method} | {1000 * plain:.1f} | {1000 * guided:.1f} | "
                  f"{guided / plain:.2f} |", flush=True)


if __name__ == "__main__":
    main()
