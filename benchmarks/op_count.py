"""Operations dispatched per training step, per method: the host-side cost of a step.

On a GPU, eager PyTorch pays a roughly fixed host cost (dispatch plus kernel launch) for every
operation, whatever its size. When a step's kernels are short, that cost sets the step time and
the ratio of two methods' step times tends to the ratio of their operation counts, not of their
arithmetic. This script counts, with torch.profiler on the CPU (the count does not depend on the
batch; the CPU's is a proxy for the GPU's, whose kernels may differ in detail), the ATen operations of one step's objective forward and backward
for each method of ``benchmarks/step_cost.py``, and the ones called from Python directly
("top level"). The optimizer's update is left out: on CUDA PyTorch runs it as a few dozen
multi-tensor kernels, on the CPU as a dozen operations per parameter tensor, so a CPU count of it
would not carry over. Divide a GPU step time by the count to get the time per operation.

    python benchmarks/op_count.py --nets unet-cifar10 dit-b2 --batch 4
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from step_cost import METHODS, NETS, _setup
from torch.profiler import ProfilerActivity, profile


def count_ops(net_name: str, method: str, batch: int) -> dict[str, int]:
    """ATen operations in one training step (after one warm-up step)."""
    step = _setup(net_name, method, "cpu", "fp32", batch=batch, update=False)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return {"aten": len(events), "top_level": len(top)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["unet-cifar10", "dit-b2"], choices=sorted(NETS))
    ap.add_argument("--batch", type=int, default=4, help="small: the count does not depend on it")
    ap.add_argument("--json", help="also write the counts here")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}; command: python {' '.join(sys.argv)}")
    results = {}
    for net in args.nets:
        counts = {m: count_ops(net, m, args.batch) for m in METHODS}
        print(f"\n{net}\n\n| method | ATen ops | x FM | top-level ops | x FM |\n|---|---|---|---|---|")
        for m in METHODS:
            c, f = counts[m], counts["fm"]
            print(f"| {m} | {c['aten']} | {c['aten'] / f['aten']:.2f} | {c['top_level']} | {c['top_level'] / f['top_level']:.2f} |")
        results[net] = counts
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "counts": results}, f, indent=2)


if __name__ == "__main__":
    main()
