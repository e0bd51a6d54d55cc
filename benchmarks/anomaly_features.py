"""One-class anomaly detection on real pictures with the feature-space flow maps, beside the
baselines on the same features (issue 33).

    .venv/bin/python benchmarks/anomaly_features.py fashion --minutes 3 --seeds 0 1 2
    .venv/bin/python benchmarks/anomaly_features.py digits --minutes 3
    .venv/bin/python benchmarks/anomaly_features.py textures --minutes 3

fashion / digits: train on 500 pictures of one class (digits: all of that class's training
pictures, about 140), test on held-out pictures of that class against the other nine (200 of
each class; digits: the held-out half), every class; the mean and the worst AUROC.
textures: scikit-image's brick, grass and gravel, 64 x 64 crops of the left half to train (400),
crops of the right half to test (100 normal, 100 with a pasted scratch or blot).
Prints one JSON line per class and a summary; writes benchmarks/results/anomaly_<set>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowmaps.feature_anomaly import Pictures, fit_anomaly, score_summary  # noqa: E402
from flowmaps.metrics.features import PictureFeatures  # noqa: E402


def _pictures(images: np.ndarray) -> Pictures:
    return Pictures(np.ascontiguousarray(images), [Path(f"{i}.png") for i in range(len(images))], Path("."))


def fashion(seed: int):
    from flowmaps.data.images import FASHION_MNIST_DEBIAN, load_idx_dataset

    xtr, ytr = load_idx_dataset(FASHION_MNIST_DEBIAN, "fashion-mnist", "train")
    xte, yte = load_idx_dataset(FASHION_MNIST_DEBIAN, "fashion-mnist", "test")
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.choice(np.flatnonzero(yte == c), 200, replace=False) for c in range(10)])
    for c in range(10):
        train = rng.choice(np.flatnonzero(ytr == c), 500, replace=False)
        yield str(c), xtr[train], xte[test], yte[test] != c


def digits(seed: int):
    from flowmaps.data.images import load_digits

    x, y = load_digits()
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(x))
    tr, te = half[: len(x) // 2], half[len(x) // 2:]
    for c in range(10):
        yield str(c), x[tr[y[tr] == c]], x[te], y[te] != c


def _defect(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A pasted scratch (a straight dark or light line 2-3 pixels wide, 24 pixels long or more) or
    a blot (a filled dark or light ellipse, radii 4-8 pixels)."""
    out = crop.astype(np.float64).copy()
    h, w = crop.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    value = rng.choice([0.15, 0.85]) * 255
    if rng.random() < 0.5:
        x0, y0, x1, y1 = rng.uniform(8, w - 8, 4)
        while np.hypot(x1 - x0, y1 - y0) < 24:
            x0, y0, x1, y1 = rng.uniform(8, w - 8, 4)
        d = np.abs((y1 - y0) * xx - (x1 - x0) * yy + x1 * y0 - y1 * x0) / max(np.hypot(y1 - y0, x1 - x0), 1e-6)
        t = ((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / max((x1 - x0) ** 2 + (y1 - y0) ** 2, 1e-6)
        mask = (d < rng.uniform(1.0, 1.6)) & (t > 0) & (t < 1)
    else:
        cx, cy, a, b = rng.uniform(12, w - 12), rng.uniform(12, h - 12), rng.uniform(4, 8), rng.uniform(4, 8)
        mask = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
    out[..., mask] = value
    return out.astype(np.uint8)


def textures(seed: int):
    import skimage.data

    rng = np.random.default_rng(seed)
    for name in ("brick", "grass", "gravel"):
        img = getattr(skimage.data, name)()  # 512 x 512 grey
        def crops(x_lo, x_hi, n, img=img):
            ys, xs = rng.integers(0, 512 - 64, n), rng.integers(x_lo, x_hi - 64, n)
            return np.stack([img[y:y + 64, x:x + 64][None] for y, x in zip(ys, xs)])
        train = crops(0, 256, 400)
        normal, bad = crops(256, 512, 100), crops(256, 512, 100)
        bad = np.stack([_defect(b, rng) for b in bad])
        yield name, train, np.concatenate([normal, bad]), np.r_[np.zeros(100, bool), np.ones(100, bool)]


SETS = {"fashion": fashion, "digits": digits, "textures": textures}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("set", choices=list(SETS))
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--only", nargs="+", help="class or texture names")
    p.add_argument("--size", type=int, help="the feature network's input size (default: flowmaps' choice)")
    p.add_argument("--dump", help="a folder for each class's raw scores (.npz), for analysis")
    args = p.parse_args()
    extractor = PictureFeatures.load()
    rows = []
    for seed in args.seeds:
        cache: dict[int, tuple] = {}
        for name, train, test, anomalous in SETS[args.set](seed):
            if args.only and name not in args.only:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.monotonic()
                where = Path(args.dump) / f"{args.set}-{name}-{seed}-run" if args.dump else Path(tmp) / "run"
                model = fit_anomaly(_pictures(train), where, args.minutes, seed, log=lambda s: None, size=args.size)
                seconds = time.monotonic() - t0
                key = id(test) if args.set == "textures" else 0
                if key not in cache:
                    cache = {key: extractor(test, model.size)}
                pooled, local = cache[key]
                g, loc, heat = model.raw_scores(pooled, local, seed)
                score, zg, zl = model.combine(g, loc)
                result = {"score": score, "global": zg, "local": zl, "max_z": np.maximum(zg, zl),
                          **model.baselines(pooled, local, seed)}
                if args.dump:
                    Path(args.dump).mkdir(parents=True, exist_ok=True)
                    np.savez(Path(args.dump) / f"{args.set}-{name}-{seed}.npz", g=g, loc=loc, heat=heat, anomalous=anomalous,
                             pooled=pooled, local_features=local, cal=json.dumps(model.info["calibration"]),
                             **{f"score_{k}": v for k, v in result.items()})
                auc = score_summary(result, anomalous)
                from flowmaps.metrics.outliers import auroc
                auc["max_z"] = auroc(result["max_z"], anomalous)
                row = {"set": args.set, "class": name, "seed": seed, "train_seconds": round(seconds, 1),
                       **{k: round(v, 4) for k, v in auc.items()}}
                rows.append(row)
                print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k not in ("set", "class", "seed", "train_seconds")]
    summary = {k: {"mean": round(float(np.mean([r[k] for r in rows])), 4), "worst": round(float(np.min([r[k] for r in rows])), 4)}
               for k in keys}
    seed_means = {k: [float(np.mean([r[k] for r in rows if r["seed"] == s])) for s in args.seeds] for k in keys}
    summary = {k: {**v, "seed_means": [round(x, 4) for x in seed_means[k]]} for k, v in summary.items()}
    print(json.dumps(summary, indent=1))
    out = Path(__file__).parent / "results" / f"anomaly_{args.set}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
                               "minutes": args.minutes, "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
