"""Generation on a CPU budget from pixels and from a patch code (issue 33, item 4).

    .venv/bin/python benchmarks/picture_sets.py /tmp/pics
    .venv/bin/python benchmarks/code_generation.py /tmp/pics --sets discs shapes --minutes 3 [--paths pixels code]
        [--variant 'NAME=--code patch --set net.kind=edm2 ...' ...]

For each set and path (pixels: ``flowmaps train --data DIR``; code: ``--code patch``; no other
flag; each ``--variant NAME=FLAGS`` another path, trained with those flags), trains for ``--minutes``, draws 200 samples at N = 1, 2, 4 and measures, against the
set's 100 held-out pictures:
- fd_lite0: the Frechet distance in EfficientNet-Lite0's pooled features (224 x 224), samples
  against held-out pictures, beside 100 training pictures against the held-out ones (what real
  pictures score, ``real_fd_lite0``);
- nearest: the median distance (pixels, [0, 1] per channel, RMS) of a sample to its nearest
  training picture, over that of a held-out picture (at most 2 is the issue's target);
- memorisation: the audit's ratio, the same distances in Lite0 features (>= 0.8: not copies).
Writes a PNG per set and path (rows: the code's Gaussian map when there is one, N = 1, 2, 4,
then the samples' nearest training pictures) and benchmarks/results/code_generation.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowmaps.data.images import load_image_folder  # noqa: E402
from flowmaps.inputs import save_png_grid  # noqa: E402
from flowmaps.metrics.features import PictureFeatures  # noqa: E402
from flowmaps.metrics.fid import feature_stats, frechet_distance  # noqa: E402
from flowmaps.pipeline import draw_samples  # noqa: E402
from flowmaps.run import load_run  # noqa: E402

FLOWMAPS = str(Path(sys.executable).parent / "flowmaps")


def pictures(folder: Path) -> torch.Tensor:
    images, _ = load_image_folder(folder, 64, labels_from_subfolders=False)
    return torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def nearest(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each row of a [n, d] to its nearest row of b [m, d]."""
    d = torch.cdist(a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double())
    v, i = d.min(1)
    return v.numpy(), i.numpy()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--sets", nargs="+", default=["discs", "shapes"])
    p.add_argument("--paths", nargs="+", default=["pixels", "code"])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--runs", default="/tmp/code_generation_runs")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="another path: 'flowmaps train' with these extra flags (a code run when they hold --code)")
    p.add_argument("--reuse", action="store_true", help="measure finished runs in --runs of the same set, path and "
                                                         "minutes instead of training again")
    args = p.parse_args()
    lite = PictureFeatures.load()
    variants = {"pixels": [], "code": ["--code", "patch"]}
    for v in args.variant:
        name, flags = v.split("=", 1)
        variants[name] = shlex.split(flags)
        args.paths.append(name)
    rows = []
    for name in args.sets:
        train, held = pictures(Path(args.root) / name), pictures(Path(args.root) / f"{name}-heldout")
        f_train = lite(to_uint8(train), 224)[0].astype(np.float64)
        f_held = lite(to_uint8(held), 224)[0].astype(np.float64)
        real_fd = frechet_distance(*feature_stats(f_train[: len(f_held)]), *feature_stats(f_held))
        d_held, _ = nearest((held + 1) / 2, (train + 1) / 2)
        fd_held_near = nearest(torch.from_numpy(f_held), torch.from_numpy(f_train))[0]
        for path in args.paths:
            done = sorted(p for p in Path(args.runs).glob(f"{name}-{path}-{args.minutes:g}min-*") if (p / "eval.json").is_file())
            if args.reuse and done:
                out, seconds = done[-1], float("nan")
            else:
                out = Path(args.runs) / f"{name}-{path}-{args.minutes:g}min-{time.strftime('%H%M%S')}"
                cmd = [FLOWMAPS, "train", "--data", str(Path(args.root) / name), "--minutes", str(args.minutes), "--out", str(out)]
                cmd += variants[path]
                t0 = time.monotonic()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds = time.monotonic() - t0
            run = load_run(out)
            decode = None
            coded = bool(run.cfg.data.decoder)
            if coded:
                from flowmaps.external import load_decoder

                decode = load_decoder(run.cfg.data.decoder, run.shape)
            grid = []
            row = {"set": name, "path": path, "flags": " ".join(variants[path]), "minutes": args.minutes, "seconds": round(seconds, 1),
                   "steps": run.cfg.train.steps, "shape": list(run.shape), "real_fd_lite0": round(real_fd, 3)}
            for n in (1, 2, 4):
                x = draw_samples(run, n, 200, seed=0).x
                x = decode(x) if decode is not None else x.clamp(-1, 1)
                if x.shape[-1] != train.shape[-1]:  # a pixel run trained below 64 x 64: measured upsampled, as a user sees it
                    x = torch.nn.functional.interpolate(x, size=train.shape[-2:], mode="bilinear", align_corners=False)
                f = lite(to_uint8(x), 224)[0].astype(np.float64)
                d, idx = nearest((x + 1) / 2, (train + 1) / 2)
                fd_gen_near = nearest(torch.from_numpy(f), torch.from_numpy(f_train))[0]
                row[f"N={n}"] = {"fd_lite0": round(frechet_distance(*feature_stats(f), *feature_stats(f_held)), 3),
                                 "nearest_ratio": round(float(np.median(d) / np.median(d_held)), 3),
                                 "memorisation": round(float(np.median(fd_gen_near) / np.median(fd_held_near)), 3)}
                grid.append(x[:12])
                if n == 1:
                    near = train[idx[:12]]
            if coded and run.cfg.net.gaussian_base:  # the code's closed-form Gaussian map alone, X_{0,1} = x + v^G_{0,1}(x)
                net = run.fm.net
                z = run.sigma * torch.randn(12, *run.shape, generator=torch.Generator().manual_seed(0))
                flat = z.reshape(12, -1)
                with torch.no_grad():
                    x1 = flat + net._gaussian(flat.to(net.mean.dtype), torch.zeros(12), torch.ones(12))
                grid.insert(0, decode(run.to_data(x1.reshape(z.shape).float())))
            grid.append(near)
            save_png_grid(torch.cat(grid), Path(__file__).parent / "results" / f"code_generation_{name}_{path}_{args.minutes:g}min.png", 12)
            rows.append(row)
            print(json.dumps(row), flush=True)
    res = Path(__file__).parent / "results" / "code_generation.json"
    old = json.loads(res.read_text())["rows"] if res.is_file() else []
    res.write_text(json.dumps({"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
                               "rows": old + rows}, indent=1))


if __name__ == "__main__":
    main()
