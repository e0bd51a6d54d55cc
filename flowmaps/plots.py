"""PNG figures: 2-D samples across N (paper Fig. 3), image grids with the same noise across N
(Fig. 5), loss by time bin and gradient norm over training (Fig. 4)."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402


def save_figure(fig, out: Path, dpi: int = 110) -> None:  # fig: a matplotlib Figure
    """Write ``fig`` to the PNG ``out`` atomically (a temporary file beside it, then a rename) and
    close it."""
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    tmp.replace(out)


def plot_2d_grid(rows: dict[str, dict[int, Tensor]], path: str | Path, lim: float | None = 1.2, points: int = 20000) -> Path:
    """rows: label -> {N: samples [n, 2]}; one panel per (label, N), histogram-shaded."""
    labels = list(rows)
    steps = sorted({n for r in rows.values() for n in r})
    fig, axes = plt.subplots(len(labels), len(steps), figsize=(2.2 * len(steps), 2.2 * len(labels)), squeeze=False)
    for i, label in enumerate(labels):
        for j, n in enumerate(steps):
            ax = axes[i][j]
            x = rows[label].get(n)
            if x is not None:
                x = x[:points].detach().cpu().float()
                ax.scatter(x[:, 0], x[:, 1], s=0.3, alpha=0.4, color="k", rasterized=True)
            if lim is not None:
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(f"N = {n}")
            if j == 0:
                ax.set_ylabel(label)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """[B, C, H, W] in [-1, 1] -> one image [H', W', C] in [0, 1] with ``nrow`` per row."""
    x = images.detach().cpu().float().clamp(-1, 1).add(1).div(2)
    b, c, h, w = x.shape
    rows = (b + nrow - 1) // nrow
    canvas = torch.ones(c, rows * (h + 1) + 1, nrow * (w + 1) + 1)
    for k in range(b):
        r, col = divmod(k, nrow)
        canvas[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = x[k]
    return canvas.permute(1, 2, 0)


def plot_image_rows(rows: dict[str, Tensor], path: str | Path) -> Path:
    """rows: label (e.g. 'N = 1') -> images [k, C, H, W] (the same noise in every row)."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.4 * len(rows)), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows.items()):
        grid = image_grid(imgs, imgs.shape[0]).numpy()
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training(metrics: list[dict], path: str | Path | BinaryIO) -> Path | BinaryIO:
    """Loss (diagonal, off-diagonal), gradient norm over steps, and the last loss by time bin."""
    steps = [m["step"] for m in metrics]

    def series(key: str) -> list[float]:
        return [float("nan") if m.get(key) is None else m[key] for m in metrics]

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    mark = "o" if len(steps) < 20 else None  # a short log is points, not invisible lines
    axes[0].plot(steps, series("diag_sq"), marker=mark, label="diagonal (flow matching)")
    axes[0].plot(steps, series("off_sq"), marker=mark, label="off-diagonal (distillation)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].legend()
    axes[0].set_title("mean unweighted |r|^2")
    axes[1].plot(steps, series("grad_norm"), marker=mark)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_title("gradient norm (before clipping)")
    last = metrics[-1]
    for key, label in (("diag_by_t", "diagonal by t"), ("off_by_gap", "off-diagonal by t - s")):
        bins = last.get(key) or {}
        if bins:
            centres = [sum(map(float, k.split("-"))) / 2 for k in bins]
            axes[2].plot(centres, list(bins.values()), marker="o", label=label)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("time bin")
    axes[2].legend()
    axes[2].set_title(f"unweighted |r|^2 by time bin (step {last['step']})")
    fig.tight_layout()
    path = path if hasattr(path, "write") else Path(path)  # type: ignore[assignment]
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_sequences(rows: dict[str, Tensor], path: str | Path, per_row: int = 6) -> Path:
    """rows: label -> sequences [k, L, C]; one panel per sequence (its C channels as lines)."""
    labels = list(rows)
    fig, axes = plt.subplots(len(labels), per_row, figsize=(2.2 * per_row, 1.6 * len(labels)), squeeze=False)
    for i, label in enumerate(labels):
        seqs = rows[label].detach().cpu().float()
        for j in range(per_row):
            ax = axes[i][j]
            if j < seqs.shape[0]:
                ax.plot(seqs[j].numpy(), linewidth=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
