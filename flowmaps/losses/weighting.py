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
