"""A latent run end to end (issue 11): train on "latents" through ``flowmaps train --data
latents.npy --set data.decoder=decoder.pt2``, and score FID on the decoded samples.

The latents are images folded into channels by a 2 x 2 space-to-depth (``pixel_unshuffle``):
an exact, invertible encoder, so the decoder (``pixel_shuffle``, exported with ``torch.export``)
is exact too and FID measures the generator alone. Digits: [1, 8, 8] -> [4, 4, 4]; Fashion-MNIST
(first ``--items`` training images, from ``--fashion``): [1, 28, 28] -> [4, 14, 14]. The
reference is the decoded training arrays (at most 50,000); the FID weights are the optional
``flowmaps[fid]`` extra. Inception on a CPU is slow: FID of 1,000 samples at three N and of
5,000 references took about 30 of the 37 minutes of the Fashion-MNIST run below.

    python benchmarks/latent_fid.py --data digits --minutes 3 --samples 1000
    python benchmarks/latent_fid.py --data fashion --items 5000 --minutes 3 --samples 1000
"""
from __future__ import annotations

import argparse
import gzip
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cli_runs import train_via_cli


class SpaceToDepthDecoder(torch.nn.Module):
    """[B, 4, H/2, W/2] -> [B, 1, H, W] in [-1, 1]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_shuffle(z, 2).clamp(-1, 1)


def images(data: str, items: int, fashion: str) -> torch.Tensor:
    """[n, 1, H, W] in [-1, 1]."""
    if data == "digits":
        from sklearn.datasets import load_digits

        x = torch.from_numpy(load_digits().images).float()[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1]
    else:
        raw = gzip.open(Path(fashion) / "train-images-idx3-ubyte.gz").read()
        x = torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).copy().reshape(-1, 1, 28, 28)).float() / 127.5 - 1.0
    return x[:items]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["digits", "fashion"], default="digits")
    ap.add_argument("--fashion", default=".data/fashion-mnist", help="folder of Fashion-MNIST's .gz files")
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out", help="keep the run here (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="latent_fid_"))
    root.mkdir(parents=True, exist_ok=True)
    latents = torch.nn.functional.pixel_unshuffle(images(args.data, args.items, args.fashion), 2)
    np.save(root / "latents.npy", latents.numpy().astype(np.float32))
    shape = tuple(latents.shape[1:])
    prog = torch.export.export(SpaceToDepthDecoder(), (torch.zeros(2, *shape),),
                               dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(prog, str(root / "decoder.pt2"))
    t0 = time.perf_counter()
    result, meta = train_via_cli(root / "run", "--data", str(root / "latents.npy"), "--minutes", str(args.minutes),
                                 "--set", f"data.decoder={root / 'decoder.pt2'}", "--set", f"data.cache={root / 'cache'}",
                                 "--set", "eval.metrics=[fd_array,fid]", "--set", f"eval.num_samples={args.samples}",
                                 "--set", "eval.steps=[1,2,4]")
    wall = time.perf_counter() - t0
    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.data}: {len(latents)} latents {list(shape)}; {meta['budget']['steps'] if 'budget' in meta else '?'} steps; {wall / 60:.1f} min in all "
          f"(training {args.minutes} min, the rest evaluation)")
    print(f"run: {root / 'run'}\n\n| N | fd_array | FID (decoded, {args.samples} samples) |\n|---|---|---|")
    rows = result["metrics"]["map"]
    for n in sorted(rows, key=int):
        print(f"| {n} | {rows[n]['fd_array']:.2f} | {rows[n].get('fid', float('nan')):.1f} |")
    floor = result.get("reference", {}).get("perfect sampler (exact data)", {})
    print(f"| fresh data | {floor.get('fd_array', float('nan')):.2f} | |")
    if "skipped_metrics" in result:
        print(f"skipped: {result['skipped_metrics']}")


if __name__ == "__main__":
    main()
