"""One-step restoration on held-out images (issue 10): flowmaps against classical restorers.

A digits model is trained the way a user would (``flowmaps train --preset digits-cpu
--set data.holdout=0.25 --set train.steps=S``), so a quarter of the 8x8 digits (449 images, every class)
is never seen in training. Those images are damaged synthetically and restored:

- Gaussian noise of std 0.2 and 0.5 (images in [-1, 1]);
- a 4x4 square (a quarter of the pixels) at a random place, masked out.

flowmaps rows (N network calls each): ``edit`` (noise to 1 - strength with fresh noise, map back;
the best strength of a sweep), ``denoise`` (the known noise level, no fresh noise), the diagonal's
``posterior mean`` (one call), and inpainting with the ``jump`` and ``replace`` schemes. Classical
rows from scikit-image: non-local means and total-variation denoising (their strength tuned on
the same images, as ours is), biharmonic inpainting. Metrics: PSNR (peak-to-peak 2) averaged over
images, and ``fd_classifier`` (Frechet distance of the project classifier's features) between
the restored and the clean images (the clean set against itself is 0).

    pip install -e '.[bench]'   # scikit-image
    python benchmarks/restoration.py --steps 1500
    python benchmarks/restoration.py --run runs/DIR     # an existing run trained with data.holdout
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cli_runs import train_via_cli

from flowmaps.edit import denoise, edit, inpaint, posterior_mean
from flowmaps.metrics.classifier import classifier_frechet_distance
from flowmaps.metrics.images import project_classifier
from flowmaps.run import load_run
from flowmaps.train.builders import build_data

STRENGTHS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
INPAINT_STRENGTHS = [0.5, 0.7, 0.85, 1.0]
STEPS = [1, 2, 4]


def psnr(x: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over images of 10 log10(4 / MSE) (images in [-1, 1], peak-to-peak 2)."""
    mse = (x.clamp(-1, 1) - clean).flatten(1).pow(2).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(4.0 / mse)).mean())


def square_masks(n: int, side: int, size: int, seed: int) -> torch.Tensor:
    """Known-pixel masks [n, 1, size, size]: 0 inside a side x side square at a random place."""
    rng = np.random.default_rng(seed)
    m = torch.ones(n, 1, size, size)
    for i, (r, c) in enumerate(rng.integers(0, size - side + 1, (n, 2))):
        m[i, :, r : r + side, c : c + side] = 0
    return m


def classical_denoisers(y: torch.Tensor, sigma_n: float, clean: torch.Tensor) -> dict[str, tuple[torch.Tensor, str]]:
    """scikit-image's non-local means and total-variation denoising of y [n, 1, H, W], each at the
    setting (of a small sweep) with the best PSNR against ``clean``."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    imgs = y[:, 0].numpy().astype(np.float64)
    out = {}
    best = None
    for h in (0.6, 0.8, 1.0, 1.2):
        r = torch.from_numpy(np.stack([denoise_nl_means(im, h=h * sigma_n, sigma=sigma_n, patch_size=3, patch_distance=2,
                                                        fast_mode=False) for im in imgs])).float()[:, None]
        if best is None or psnr(r, clean) > psnr(best[0], clean):
            best = (r, f"h = {h:g} sigma")
    out["non-local means (scikit-image)"] = best  # type: ignore[assignment]
    best = None
    for w in (0.05, 0.1, 0.2, 0.3, 0.5, 0.8):
        r = torch.from_numpy(np.stack([denoise_tv_chambolle(im, weight=w * sigma_n / 0.2) for im in imgs])).float()[:, None]
        if best is None or psnr(r, clean) > psnr(best[0], clean):
            best = (r, f"weight {w * sigma_n / 0.2:g}")
    out["total variation (scikit-image)"] = best  # type: ignore[assignment]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500, help="training steps (the preset's 2,200 take about 11 minutes)")
    ap.add_argument("--run", help="an existing digits run trained with data.holdout > 0 (skips training)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", default="benchmarks/results/restoration_digits.png")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    t0 = time.perf_counter()
    if args.run:
        run_dir = Path(args.run)
    else:
        run_dir = Path(tmp.name) / "digits"
        train_via_cli(run_dir, "--preset", "digits-cpu", "--set", f"train.steps={args.steps}", "--set", "data.holdout=0.25")
    train_s = time.perf_counter() - t0
    run = load_run(run_dir)
    fm, sigma = run.fm, run.sigma
    held = build_data(run.cfg, "heldout")
    clean = held.images.batch(np.arange(held.size))[0]
    classifier, _, _ = project_classifier(run.cfg, build_data(run.cfg))
    g = torch.Generator().manual_seed(args.seed)

    def fd(x: torch.Tensor) -> float:
        return classifier_frechet_distance(classifier, x.clamp(-1, 1), clean)

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(args.seed + 1)

    tables: dict[str, list[tuple[str, str, float, float]]] = {}
    figure_rows: dict[str, torch.Tensor] = {"clean": clean[:12]}
    for sigma_n in (0.2, 0.5):
        y = clean + sigma_n * torch.randn(clean.shape, generator=g)
        rows = [("noisy input", "", psnr(y, clean), fd(y))]
        for name, (r, setting) in classical_denoisers(y, sigma_n, clean).items():
            rows.append((name, setting, psnr(r, clean), fd(r)))
        r = posterior_mean(fm, y, sigma_n, sigma)
        rows.append(("flowmaps posterior mean (1 call)", "", psnr(r, clean), fd(r)))
        for n in STEPS:
            r = denoise(fm, y, sigma_n, n, sigma)
            rows.append((f"flowmaps denoise, N = {n}", f"t0 = {sigma / (sigma + sigma_n):.2f}", psnr(r, clean), fd(r)))
            if n == 1:
                figure_rows[f"noise {sigma_n:g}"] = y[:12]
                figure_rows[f"denoise N=1 ({sigma_n:g})"] = r[:12]
        for n in STEPS:
            best = max(((s, edit(fm, y, s, n, sigma, gen())) for s in STRENGTHS), key=lambda p: psnr(p[1], clean))
            rows.append((f"flowmaps edit, N = {n}", f"best strength {best[0]:g}", psnr(best[1], clean), fd(best[1])))
        tables[f"Gaussian noise, std {sigma_n:g}"] = rows
    known = square_masks(clean.shape[0], 4, clean.shape[-1], args.seed)
    damaged = clean * known
    from skimage.restoration import inpaint_biharmonic

    bih = torch.from_numpy(np.stack([inpaint_biharmonic(im[0].numpy().astype(np.float64), (1 - m[0]).numpy().astype(bool))
                                     for im, m in zip(damaged, known)])).float()[:, None]
    rows = [("masked input (square set to 0)", "", psnr(damaged, clean), fd(damaged)),
            ("biharmonic inpainting (scikit-image)", "", psnr(bih, clean), fd(bih))]
    figure_rows["masked"] = damaged[:12]
    for scheme in ("jump", "replace"):
        for n in STEPS:
            best = max(((s, inpaint(fm, clean, known, n, sigma, s, gen(), scheme)) for s in INPAINT_STRENGTHS),
                       key=lambda p: psnr(p[1], clean))
            rows.append((f"flowmaps inpaint ({scheme}), N = {n}", f"best strength {best[0]:g}", psnr(best[1], clean),
                         fd(best[1])))
            if n == 4 and scheme == "jump":
                figure_rows["inpaint N=4"] = best[1][:12]
    tables["4x4 square masked"] = rows

    print(f"\nmachine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; run: "
          f"{run.cfg.data.name}, {run.step} steps ({train_s:.0f} s), EMA {run.ema}; held-out images: {clean.shape[0]}; "
          f"command: python benchmarks/restoration.py --steps {args.steps}\n")
    for title, rows in tables.items():
        print(f"**{title}**\n\n| method | setting | PSNR dB | fd_classifier |\n|---|---|---|---|")
        for name, setting, p, f in rows:
            print(f"| {name} | {setting} | {p:.2f} | {f:.2f} |")
        print()
    if args.figure:
        from flowmaps.plots import plot_image_rows

        plot_image_rows(figure_rows, args.figure)
        print(f"figure: {args.figure}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
