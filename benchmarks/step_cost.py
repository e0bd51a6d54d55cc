"""Time and peak memory of one training step per method, as ratios to a flow-matching step.

Each step is: objective (diagonal + off-diagonal branch) forward, backward, RAdam update.
Same network, batch and eta for every method; timings are interleaved rounds, median per method.
Peak memory: on CUDA, torch.cuda.max_memory_allocated during one step above the memory held
before it (in one process); on CPU (Linux), the peak RSS during the first step above the RSS after setup, in a
fresh subprocess per method (it includes the optimizer state, the same for every method).

    python benchmarks/step_cost.py                      # checker MLP (batch 4096) + small UNet
    python benchmarks/step_cost.py --nets mlp --rounds 5
    python benchmarks/step_cost.py --device cuda --nets mlp unet-cifar10
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time

import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.nets import MLP
from flowmaps.nets.dit import DiT, DiTConfig
from flowmaps.nets.edm2 import PRESETS, EDM2Config, EDM2UNet

METHODS = ["fm", "lsd", "lsd-semigrad", "esd", "psd-u", "psd-m", "meanflow"]

NETS = {
    # name: (builder, data shape, batch)
    "mlp": (lambda: (MLP(dim=2, width=512, depth=4), "s_t"), (2,), 4096),
    "unet-small": (
        lambda: (EDM2UNet(EDM2Config(img_resolution=16, img_channels=1, model_channels=32, channel_mult=[1, 2],
                                     num_blocks=1, attn_resolutions=[8], channels_per_head=32, dropout=0.0)), "s_dt"),
        (1, 16, 16),
        128,
    ),
    "unet-cifar10": (lambda: (EDM2UNet(PRESETS["cifar10"]), "s_dt"), (3, 32, 32), 128),
    # the digits-dit-cpu network on 16 x 16 images (64 tokens), and DiT-B/2 on 32 x 32 x 4 latents (256 tokens)
    "dit-small": (lambda: (DiT(DiTConfig(input_shape=(1, 16, 16), patch_size=2, hidden=128, depth=6, heads=4)), "s_dt"),
                  (1, 16, 16), 128),
    "dit-b2": (lambda: (DiT(DiTConfig.named("B/2", (4, 32, 32))), "s_dt"), (4, 32, 32), 64),
}


def _setup(net_name: str, method: str, device: str, dtype: str, backend: str = "auto", batch: int | None = None,
           update: bool = True):
    """One training step as a closure; ``update=False`` leaves out the optimizer's update."""
    build, shape, default_batch = NETS[net_name]
    batch = batch or default_batch
    torch.manual_seed(0)
    net, time_input = build()
    if dtype == "bf16" and isinstance(net, EDM2UNet):
        net.compute_dtype = torch.bfloat16
    # the MLP and the DiT run bfloat16 under autocast, as flowmaps' Trainer does
    autocast = dtype == "bf16" and isinstance(net, (MLP, DiT))
    fm = FlowMap(net, time_input).to(device)
    obj = Objective(ObjectiveConfig(method=method, weighting="auto", jvp_backend=backend), sigma=0.5)
    opt = torch.optim.RAdam(fm.parameters(), lr=1e-4)
    x1 = torch.randn(batch, *shape, device=device)
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            out = obj(fm, x1, generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if update:
            opt.step()

    return step


def _sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_methods(net_name: str, device: str, dtype: str, rounds: int, steps: int, backend: str) -> dict[str, float]:
    runners = {m: _setup(net_name, m, device, dtype, backend) for m in METHODS}
    for run in runners.values():  # warm-up
        run()
        run()
    samples: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(rounds):
        for m, run in runners.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                run()
            _sync(device)
            samples[m].append((time.perf_counter() - t0) / steps)
    return {m: statistics.median(v) for m, v in samples.items()}


def _peak_child(net_name, method, device, dtype, backend, queue):
    step = _setup(net_name, method, device, dtype, backend)
    # Linux: reset the peak-RSS mark (clear_refs 5), then read VmHWM after one step.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    step()
    queue.put((_status_kib("VmHWM") - base) / 1024)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_cuda(net_name: str, method: str, device: str, dtype: str, backend: str) -> float:
    step = _setup(net_name, method, device, dtype, backend)
    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def peak_memory(net_name: str, device: str, dtype: str, backend: str) -> dict[str, float]:
    if device.startswith("cuda"):
        # CUDA counts allocations per process exactly, so no fresh process is needed (a CUDA start
        # per method would cost seconds of a short GPU lease); memory of the methods measured
        # earlier is freed before each one.
        out = {}
        for m in METHODS:
            out[m] = _peak_cuda(net_name, m, device, dtype, backend)
            torch.cuda.empty_cache()
        return out
    ctx = mp.get_context("spawn")
    out = {}
    for m in METHODS:
        q = ctx.Queue()
        p = ctx.Process(target=_peak_child, args=(net_name, m, device, dtype, backend, q))
        p.start()
        out[m] = q.get()
        p.join()
    return out


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["mlp", "unet-small"], choices=sorted(NETS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--backend", default="auto", choices=["auto", "explicit", "func", "forward_ad", "fd"], help="JVP backend")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    results = {}
    print(f"machine: {machine(args.device)}; dtype {args.dtype}; JVP backend {args.backend}; eta 0.75; "
          f"command: python {' '.join(sys.argv)}")
    for net in args.nets:
        times = time_methods(net, args.device, args.dtype, args.rounds, args.steps, args.backend)
        mem = peak_memory(net, args.device, args.dtype, args.backend)
        batch = NETS[net][2]
        print(f"\n{net} (batch {batch})\n")
        print("| method | step (ms) | x FM | peak mem (MiB) | x FM |")
        print("|---|---|---|---|---|")
        for m in METHODS:
            print(f"| {m} | {times[m] * 1e3:.1f} | {times[m] / times['fm']:.2f} | {mem[m]:.0f} | "
                  f"{mem[m] / max(mem['fm'], 1e-9):.2f} |")
        results[net] = {"time_s": times, "peak_mib": mem, "batch": batch}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(args.device), "dtype": args.dtype, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
