"""Couplings of noise and data for the interpolant I_t = (1 - t) x0 + t x1.

The paper draws x0 ~ N(0, sigma^2 I) independently of the data x1. Any coupling with the same
marginals keeps every result of the method (the flow still carries the noise law to the data
law, the diagonal still learns its velocity, the map its flow); a coupling that pairs each x1
with a nearby x0 makes the flow's paths straighter, so its one-step map is easier to learn
(minibatch optimal transport, Tong et al. 2023 and Pooladian et al. 2023).

``minibatch_ot`` pairs the noise and data of each chunk of ``chunk`` samples by the exact
assignment that minimises sum |x0 - x1|^2 (scipy's Hungarian solver; cost O(chunk^3) per chunk,
on the CPU). Larger chunks straighten more and cost more; see benchmarks/README.md.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

COUPLINGS: tuple[str, ...] = ("independent", "minibatch_ot")


def minibatch_ot_coupling(x0: Tensor, x1: Tensor, chunk: int = 64) -> Tensor:
    """x0 [B, ...] permuted within consecutive chunks so that each x0[i] pairs with x1[i] by the
    optimal assignment of that chunk (squared Euclidean cost over the flattened sample)."""
    if chunk < 2:
        return x0
    a, b = x0.detach().flatten(1).float().cpu(), x1.detach().flatten(1).float().cpu()
    n = x0.shape[0]
    whole = n - n % chunk
    order = np.arange(n)
    # every full chunk's cost matrix from one batched call; scipy solves them one by one
    costs = [torch.cdist(b[:whole].reshape(-1, chunk, b.shape[1]), a[:whole].reshape(-1, chunk, a.shape[1]))] if whole else []
    if whole < n:
        costs.append(torch.cdist(b[whole:], a[whole:])[None])
    starts = list(range(0, n, chunk))
    for i, cost in zip(starts, (c for block in costs for c in block.square().numpy())):
        _, cols = linear_sum_assignment(cost)
        order[i : i + cost.shape[0]] = i + cols
    return x0[torch.from_numpy(order).to(x0.device)]


def couple(x0: Tensor, x1: Tensor, kind: str = "independent", chunk: int = 64) -> Tensor:
    """The noise x0 [B, ...] re-paired with data x1 [B, ...] by coupling ``kind``."""
    if kind == "independent":
        return x0
    if kind == "minibatch_ot":
        return minibatch_ot_coupling(x0, x1, chunk)
    raise ValueError(f"unknown coupling {kind!r}; choose one of {', '.join(COUPLINGS)}")
