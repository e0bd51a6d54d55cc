"""Table figures in the field's language: column shapes, column pair trends (as SDMetrics'
QualityReport defines them), the share of empty cells, and machine-learning utility.

Every function takes views [N, C] in the data's scale (float64, NaN an empty cell; categories as
level indices, dates as seconds; :mod:`flowmaps.data.columns`) and the run's columns.

- Column shape: for a number or date column the Kolmogorov-Smirnov complement, 1 - max|F_r - F_s|
  over the two empirical distribution functions of the non-empty cells; for a category or boolean
  the total-variation complement, 1 - 1/2 sum_k |p_r(k) - p_s(k)|. 1 is a perfect match.
- Column pair trend: for two number or date columns the correlation similarity,
  1 - |rho_r - rho_s| / 2 (Pearson, on rows where both hold values); for any other pair the
  contingency similarity, 1 - 1/2 sum_{a,b} |p_r(a, b) - p_s(a, b)|, a number column cut into
  :data:`PAIR_BINS` equal-width bins over the real rows' range.
- Empty cells: each column's share of empty cells in both sets.
- Machine-learning utility: a gradient-boosted model (scikit-learn's histogram GBM) trained on the
  synthetic rows to predict ``target`` from the other columns, tested on held-out real rows
  (accuracy for a category, R^2 for a number), beside the same model trained on real training rows.
"""
from __future__ import annotations

from typing import Any

import numpy as np

PAIR_BINS = 10
"""Bins of a number column in a contingency table (SDMetrics' QualityReport uses 10)."""
MAX_PAIRS = 400
"""At most this many column pairs are scored (a seeded choice beyond it)."""


def _categorical(col: Any) -> bool:
    return col.type in ("category", "boolean")


def _numeric(col: Any) -> bool:
    return col.modelled and not _categorical(col)


def ks_complement(real: np.ndarray, synth: np.ndarray) -> float:
    """1 - the two-sample Kolmogorov-Smirnov statistic of two value sets [n], [m] (NaN dropped)."""
    a, b = np.sort(real[~np.isnan(real)]), np.sort(synth[~np.isnan(synth)])
    if not len(a) or not len(b):
        return float(len(a) == len(b))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(1.0 - np.abs(fa - fb).max())


def tv_complement(real: np.ndarray, synth: np.ndarray) -> float:
    """1 - the total variation distance of two level sets [n], [m] (level indices or values; NaN dropped)."""
    a, b = real[~np.isnan(real)], synth[~np.isnan(synth)]
    if not len(a) or not len(b):
        return float(len(a) == len(b))
    levels = np.union1d(a, b)
    pa = np.array([(a == k).mean() for k in levels])
    pb = np.array([(b == k).mean() for k in levels])
    return float(1.0 - 0.5 * np.abs(pa - pb).sum())


def column_shapes(real: np.ndarray, synth: np.ndarray, columns: list[Any]) -> dict[str, float]:
    """Each modelled column's shape score (KS or TV complement)."""
    return {c.name: (tv_complement if _categorical(c) else ks_complement)(real[:, j], synth[:, j])
            for j, c in enumerate(columns) if c.modelled}


def _bins(real: np.ndarray, x: np.ndarray) -> np.ndarray:
    r = real[~np.isnan(real)]
    lo, hi = (float(r.min()), float(r.max())) if len(r) else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, PAIR_BINS + 1)[1:-1]
    return np.where(np.isnan(x), np.nan, np.searchsorted(edges, x, side="right").astype(np.float64))


def _contingency(a_r: np.ndarray, b_r: np.ndarray, a_s: np.ndarray, b_s: np.ndarray) -> float:
    both_r = ~(np.isnan(a_r) | np.isnan(b_r))
    both_s = ~(np.isnan(a_s) | np.isnan(b_s))
    if not both_r.any() or not both_s.any():
        return float(both_r.any() == both_s.any())
    kr = a_r[both_r] * 1e6 + b_r[both_r]
    ks = a_s[both_s] * 1e6 + b_s[both_s]
    return tv_complement(kr, ks)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    both = ~(np.isnan(x) | np.isnan(y))
    if both.sum() < 3 or x[both].std() == 0 or y[both].std() == 0:
        return 0.0
    return float(np.corrcoef(x[both], y[both])[0, 1])


def pair_trends(real: np.ndarray, synth: np.ndarray, columns: list[Any], seed: int = 0) -> dict[str, float]:
    """Each pair of modelled columns' trend score ('a / b' -> correlation or contingency similarity)."""
    idx = [j for j, c in enumerate(columns) if c.modelled]
    pairs = [(i, j) for k, i in enumerate(idx) for j in idx[k + 1:]]
    if len(pairs) > MAX_PAIRS:
        keep = np.random.default_rng(seed).permutation(len(pairs))[:MAX_PAIRS]
        pairs = [pairs[k] for k in sorted(keep)]
    out = {}
    for i, j in pairs:
        ci, cj = columns[i], columns[j]
        if _numeric(ci) and _numeric(cj):
            score = 1.0 - abs(_correlation(real[:, i], real[:, j]) - _correlation(synth[:, i], synth[:, j])) / 2
        else:
            side = lambda c, k, x: _bins(real[:, k], x[:, k]) if _numeric(c) else x[:, k]
            score = _contingency(side(ci, i, real), side(cj, j, real), side(ci, i, synth), side(cj, j, synth))
        out[f"{ci.name} / {cj.name}"] = float(score)
    return out


def empty_shares(view: np.ndarray, columns: list[Any]) -> dict[str, float]:
    """Each modelled column's share of empty cells."""
    return {c.name: float(np.isnan(view[:, j]).mean()) for j, c in enumerate(columns) if c.modelled}


def default_target(columns: list[Any]) -> str | None:
    """The column ML utility predicts by default: the last category of levels (text, boolean),
    else the last category of numbers, else the last modelled column."""
    cats = [c.name for c in columns if _categorical(c) and c.coded] or [c.name for c in columns if _categorical(c)]
    modelled = [c.name for c in columns if c.modelled]
    return cats[-1] if cats else (modelled[-1] if len(modelled) > 1 else None)


def utility_metric(columns: list[Any], target: str) -> str:
    """How ML utility scores ``target``: ``accuracy`` for a category, ``r2`` for a number."""
    return "accuracy" if _categorical(columns[[c.name for c in columns].index(target)]) else "r2"


def utility_score(rows: np.ndarray, held: np.ndarray, columns: list[Any], target: str, seed: int = 0) -> float:
    """A gradient-boosted model predicting ``target`` from the other modelled columns, trained on
    ``rows`` [n, C] and tested on ``held`` [m, C]: its accuracy (a category) or R^2 (a number)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, r2_score

    t = [c.name for c in columns].index(target)
    feats = [j for j, c in enumerate(columns) if c.modelled and j != t]
    classify = utility_metric(columns, target) == "accuracy"
    cat_mask = [bool(columns[j].coded and len(columns[j].levels) <= 250) for j in feats]
    train, test = ~np.isnan(rows[:, t]), ~np.isnan(held[:, t])
    xs, ys = rows[train][:, feats], rows[train][:, t]
    xt, yt = held[test][:, feats], held[test][:, t]
    if not len(yt):
        return float("nan")
    if len(np.unique(ys)) < 2 or len(ys) < 5:  # nothing to learn from: predict the one value seen
        pred = np.full(len(yt), ys[0] if len(ys) else 0.0)
    else:
        kwargs = dict(max_iter=100, random_state=seed, categorical_features=cat_mask if any(cat_mask) else None)
        model = HistGradientBoostingClassifier(**kwargs) if classify else HistGradientBoostingRegressor(**kwargs)
        pred = model.fit(xs, ys).predict(xt)
    return float(accuracy_score(yt, pred)) if classify else float(r2_score(yt, pred))


def ml_utility(train: np.ndarray, synth: np.ndarray, held: np.ndarray, columns: list[Any], target: str,
               seed: int = 0) -> dict[str, Any]:
    """:func:`utility_score` trained on real training rows and on synthetic rows, each tested on
    held-out rows: {"metric": "accuracy" or "r2", "real": score, "synthetic": score, "target": name}."""
    return {"metric": utility_metric(columns, target), "target": target,
            "real": utility_score(train, held, columns, target, seed),
            "synthetic": utility_score(synth, held, columns, target, seed)}
