"""Picture sets of our own making, 64 x 64 PNGs, for the CPU generation benchmarks (issue 33).

    .venv/bin/python benchmarks/picture_sets.py OUT_DIR [--count 400] [--heldout 100] [--seed 0]

writes OUT_DIR/discs/ (a bright disc of random size, place and colour on a random linear
gradient) and OUT_DIR/shapes/ (a filled square or triangle of random size, place, angle and
colour on a plain background of another colour), each with its held-out pictures in
OUT_DIR/<set>-heldout/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64


def disc(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    a, b = rng.uniform(-1, 1, 2)
    c0, c1 = rng.uniform(0, 0.5, 3), rng.uniform(0, 0.5, 3)
    g = np.clip(0.5 + 0.5 * (a * (xx - 0.5) + b * (yy - 0.5)), 0, 1)[..., None]
    img = (1 - g) * c0 + g * c1
    cx, cy = rng.uniform(0.25, 0.75, 2)
    r = rng.uniform(0.1, 0.25)
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    img[inside] = rng.uniform(0.6, 1.0, 3)
    return (img * 255).astype(np.uint8)


def shape(rng: np.random.Generator) -> np.ndarray:
    back, front = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    while np.abs(back - front).sum() < 200:
        front = rng.uniform(0, 255, 3)
    im = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in back))
    cx, cy, r, angle = *rng.uniform(20, 44, 2), rng.uniform(9, 18), rng.uniform(0, 2 * np.pi)
    corners = 4 if rng.random() < 0.5 else 3
    pts = [(cx + r * np.cos(angle + 2 * np.pi * k / corners), cy + r * np.sin(angle + 2 * np.pi * k / corners))
           for k in range(corners)]
    ImageDraw.Draw(im).polygon(pts, fill=tuple(int(v) for v in front))
    return np.asarray(im)


SETS = {"discs": disc, "shapes": shape}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--heldout", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for name, draw in SETS.items():
        rng = np.random.default_rng(args.seed)
        for sub, n in ((name, args.count), (f"{name}-heldout", args.heldout)):
            d = Path(args.out) / sub
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(draw(rng)).save(d / f"{i:04d}.png")
        print(f"wrote {args.count} + {args.heldout} pictures to {Path(args.out) / name}")


if __name__ == "__main__":
    main()
