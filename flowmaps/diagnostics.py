"""Diagnostics of a learned flow map: tangent condition, semigroup defect, loss by time bin.

Time convention: t = 0 is noise, t = 1 is data. x: [B, ...]; s, u, t: [B].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .flow_map import FlowMap
from .losses.lagrangian import Velocity
from .losses.weighting import squared_norm


@torch.no_grad()
def tangent_residual(
    fm: FlowMap, x: Tensor, t: Tensor, h: float = 1e-3, velocity: Velocity | None = None, **cond: Any
) -> Tensor:
    """Tangent condition (Lemma 2.1, eq 7), per sample [B].

    The parameterisation X = x + (t-s) v makes d/dt X_{s,t} at s = t equal v_{t,t} by
    construction, so what can fail is (a) the continuity of v near the diagonal, measured as
    |(X_{t,t+h}(x) - x) / h - v_{t,t}(x)|^2 = |v_{t,t+h}(x) - v_{t,t}(x)|^2, and (b) when the true
    velocity is known (``velocity``), the diagonal's error |v_{t,t}(x) - b_t(x)|^2, which is
    returned instead.
    """
    diag = fm.velocity(x, t, **cond)
    if velocity is not None:
        return squared_norm(diag - velocity(x, t))
    return squared_norm(fm.v(x, t, t + h, **cond) - diag)


@torch.no_grad()
def semigroup_defect(fm: FlowMap, x: Tensor, s: Tensor, u: Tensor, t: Tensor, **cond: Any) -> Tensor:
    """|X_{u,t}(X_{s,u}(x)) - X_{s,t}(x)|^2 per sample [B] (eq 10): zero for an exact map."""
    two_jumps = fm.X(fm.X(x, s, u, **cond), u, t, **cond)
    return squared_norm(two_jumps - fm.X(x, s, t, **cond))


@dataclass
class TimeBins:
    """Per-bin mean of a per-sample quantity: edges [K + 1], mean [K] (nan where empty), count [K]."""

    edges: Tensor
    mean: Tensor
    count: Tensor

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        out = {}
        for k in range(self.mean.numel()):
            if self.count[k] > 0:
                out[f"{prefix}{float(self.edges[k]):.2f}-{float(self.edges[k + 1]):.2f}"] = float(self.mean[k])
        return out


def loss_by_time_bin(values: Tensor, times: Tensor, bins: int = 10, lo: float = 0.0, hi: float = 1.0) -> TimeBins:
    """Average ``values`` [B] within ``bins`` equal bins of ``times`` [B] over [lo, hi].

    Use t for diagonal losses and the gap t - s (or s) for off-diagonal ones; spikes at high t
    are a known failure signature of JVP-based losses.
    """
    values, times = values.detach().double().flatten(), times.detach().double().flatten()
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    idx = torch.clamp(torch.bucketize(times, edges[1:-1].contiguous(), right=True), 0, bins - 1)
    count = torch.bincount(idx, minlength=bins)
    total = torch.bincount(idx, weights=values, minlength=bins)
    mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
    return TimeBins(edges, mean, count)
