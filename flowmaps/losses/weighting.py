"""The learned loss weight (paper eq 19, EDM2's uncertainty weighting generalised to two times)."""
from __future__ import annotations

import torch
from torch import Tensor


def squared_norm(r: Tensor) -> Tensor:
    """|r|^2 summed over every non-batch dimension (the paper sums, it does not average): [B]."""
    return r.square().flatten(start_dim=1).sum(dim=1)


def weighted_loss(sq: Tensor, log_weight: Tensor | None) -> Tensor:
    """Per-sample exp(-w_{s,t}) |r|^2 + w_{s,t} (eq 19); plain |r|^2 when ``log_weight`` is None.

    sq: [B] squared residual norms; log_weight: [B] (or a broadcastable scalar) or None.
    Minimising over w gives w = log |r|^2: w estimates the log-variance of the loss.
    """
    if log_weight is None:
        return sq
    return torch.exp(-log_weight) * sq + log_weight


def adaptive_weighted_loss(sq: Tensor, power: float, eps: float = 1e-3) -> Tensor:
    """MeanFlow's adaptive loss weight: sg(1 / (|r|^2 + eps)^power) |r|^2, per sample [B].

    power = 0 is plain |r|^2; power = 1/2 behaves like |r| (a robust, Pseudo-Huber-like loss);
    power = 1 gives every sample the same gradient scale whatever its residual's size.
    """
    if power == 0:
        return sq
    return sq / (sq.detach() + eps).pow(power)
