"""Outlier scores of feature vectors: the shrunk Gaussian the feature-space flow maps start from,
and the baselines every anomaly run reports beside its own score.

Features are rows [n, d] (float). Every score is larger for a less usual row. The baselines,
fitted on the normal rows only (:data:`BASELINES`):

- ``pca``: the squared reconstruction error from the principal components that keep 90% of
  the variance (DFM's idea);
- ``knn``: the mean distance to the 5 nearest normal rows (PatchCore's idea, pooled);
- ``iforest``: an Isolation Forest's anomaly score (scikit-learn, 100 trees);
- ``gaussian``: the squared Mahalanobis distance under a Ledoit-Wolf-shrunk Gaussian (PaDiM's
  idea, pooled), :class:`ShrunkGaussian`.

And on per-position features [B, C, H, W] (:data:`LOCAL_BASELINES`), a picture scoring as its
most unusual positions (their scores aggregated as the flow map's are,
:func:`flowmaps.feature_anomaly.top_mean`):

- ``gaussian-local``: PaDiM: the Mahalanobis distance of each position's features, less the
  normal pictures' mean there, under one shrunk Gaussian shared by every position;
- ``knn-local``: PatchCore: each position's distance to the nearest of a seeded sample of the
  normal pictures' (centred) position features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass
class ShrunkGaussian:
    """The Ledoit-Wolf-shrunk Gaussian N(mean, cov) of rows [n, d]; ``whiten`` maps a row to
    cov^{-1/2} (x - mean), whose squared norm is the Mahalanobis distance."""

    mean: np.ndarray  # [d]
    root_inv: np.ndarray  # [d, d], cov^{-1/2} (symmetric)

    @classmethod
    def fit(cls, x: np.ndarray) -> ShrunkGaussian:
        from sklearn.covariance import LedoitWolf

        x = np.asarray(x, dtype=np.float64)
        lw = LedoitWolf().fit(x)
        w, v = np.linalg.eigh(lw.covariance_)
        w = np.clip(w, w.max() * 1e-12, None)
        return cls(lw.location_, (v / np.sqrt(w)) @ v.T)

    def whiten(self, x: np.ndarray) -> np.ndarray:
        """cov^{-1/2} (x - mean) [n, d] (float32) of rows x [n, d]."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) @ self.root_inv).astype(np.float32)

    def mahalanobis(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances [n] (float64)."""
        return np.square(self.whiten(x).astype(np.float64)).sum(1)

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean.astype(np.float64), "root_inv": self.root_inv.astype(np.float64)}

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> ShrunkGaussian:
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["root_inv"], np.float64))


def _pca(x: np.ndarray, seed: int) -> Scorer:
    from sklearn.decomposition import PCA

    p = PCA(n_components=0.9, svd_solver="full").fit(x)
    return lambda z: np.square(z - p.inverse_transform(p.transform(z))).sum(1)


def _knn(x: np.ndarray, seed: int) -> Scorer:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(5, len(x))).fit(x)
    return lambda z: nn.kneighbors(z)[0].mean(1)


def _iforest(x: np.ndarray, seed: int) -> Scorer:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(random_state=seed).fit(x)
    return lambda z: -forest.score_samples(z)


def _gaussian(x: np.ndarray, seed: int) -> Scorer:
    return ShrunkGaussian.fit(x).mahalanobis


BASELINES: dict[str, Callable[[np.ndarray, int], Scorer]] = {
    "pca": _pca, "knn": _knn, "iforest": _iforest, "gaussian": _gaussian,
}
"""Each baseline's name -> fit(normal rows [n, d], seed) -> score(rows [m, d]) -> [m]."""


LOCAL_BASELINES = ("gaussian-local", "knn-local")
PATCH_BANK = 5000
"""The normal position features ``knn-local`` compares with (a seeded sample; PatchCore's coreset)."""


def nearest_distance(rows: np.ndarray, bank: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Each row's [n] Euclidean distance to its nearest row of ``bank`` [m, d] (float32, chunked)."""
    import torch

    b = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    out = [torch.cdist(torch.from_numpy(np.ascontiguousarray(rows[i:i + chunk], dtype=np.float32)), b).min(1).values
           for i in range(0, len(rows), chunk)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def baseline_scores(train: np.ndarray, rows: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Every baseline fitted on ``train`` [n, d] and applied to ``rows`` [m, d]: name -> [m]."""
    train, rows = np.asarray(train, np.float64), np.asarray(rows, np.float64)
    return {name: np.asarray(fit(train, seed)(rows), np.float64) for name, fit in BASELINES.items()}


def auroc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    """The area under the ROC curve of ``scores`` [n] for telling ``anomalous`` [n] (bool) rows
    from the rest: 0.5 is chance, 1 a perfect ranking."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(anomalous, bool), np.asarray(scores, np.float64)))
