"""Sample-based distances between point clouds [N, D] and map errors against exact maps."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .fid import feature_stats, frechet_distance


def _subsample(x: Tensor, n: int, generator: torch.Generator) -> Tensor:
    if x.shape[0] <= n:
        return x
    return x[torch.randperm(x.shape[0], generator=generator)[:n]]


def wasserstein2(a: Tensor, b: Tensor, n: int = 2000, seed: int = 0) -> float:
    """Exact W2 between uniform subsamples of size ``n`` (POT's network simplex), in data units."""
    import ot

    g = torch.Generator().manual_seed(seed)
    x = _subsample(a.detach().double().cpu().flatten(1), n, g).numpy()
    y = _subsample(b.detach().double().cpu().flatten(1), n, g).numpy()
    cost = ot.dist(x, y, metric="sqeuclidean")
    wa, wb = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return float(np.sqrt(max(ot.emd2(wa, wb, cost, numItermax=1_000_000), 0.0)))


def sliced_wasserstein2(a: Tensor, b: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced W2: the root mean over random directions of the 1-D W2^2 (quantile matching)."""
    g = torch.Generator().manual_seed(seed)
    x, y = a.detach().double().cpu().flatten(1), b.detach().double().cpu().flatten(1)
    n = min(x.shape[0], y.shape[0])
    x, y = _subsample(x, n, g), _subsample(y, n, g)
    dirs = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ dirs, dim=0)
    py, _ = torch.sort(y @ dirs, dim=0)
    return float(((px - py) ** 2).mean().sqrt())


def energy_distance(a: Tensor, b: Tensor, n: int = 4000, seed: int = 0) -> float:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic) on subsamples of size ``n``."""
    g = torch.Generator().manual_seed(seed)
    x = _subsample(a.detach().double().cpu().flatten(1), n, g)
    y = _subsample(b.detach().double().cpu().flatten(1), n, g)
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def map_mse(learned: Tensor, exact: Tensor) -> float:
    """Mean over samples of |learned - exact|^2 (summed over dimensions)."""
    return float((learned.detach().double() - exact.detach().double()).square().flatten(1).sum(1).mean())


def array_frechet_distance(a: Tensor, b: Tensor) -> float:
    """Frechet distance between Gaussian fits of flattened arrays a [n, ...] and b [m, ...] in
    their own units (the arrays themselves, no feature network: not FID)."""
    mu1, s1 = feature_stats(a.detach().double().cpu().flatten(1).numpy())
    mu2, s2 = feature_stats(b.detach().double().cpu().flatten(1).numpy())
    return frechet_distance(mu1, s1, mu2, s2)
