"""Discrete consistency training and distillation (paper eqs 32 and 40-41).

Evaluated at x = I_s [B, ...] with per-sample times s, t [B]; t = 0 is noise.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..flow_map import FlowMap
from ..interpolants import expand_time


def consistency_residual(
    fm: FlowMap,
    x: Tensor,
    x_next: Tensor,
    s: Tensor,
    t: Tensor,
    delta: Tensor,
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """(X_{s,t}(x) - sg(X_{s+delta,t}(x_next))) / delta, per sample.

    - Consistency training (eqs 40-41): x_next = I_{s+delta} on the same (x0, x1) path, i.e. the
      conditional velocity dI_s stands in for b_s.
    - Consistency distillation (eq 32): x_next = x + delta b_s(x) for a teacher (or self-teacher) b.
    The target uses the current weights under stop-gradient. Dividing by delta [B] (nonzero, signed
    as t - s) keeps the loss O(1); as delta -> 0 the residual tends to minus the Eulerian residual
    d/ds X_{s,t}(x) + grad_x X_{s,t}(x) b_s(x) (eq 35).
    """
    with torch.no_grad():
        target = fm.X(x_next, s + delta, t, **cond)
    if student_v is None:
        student_v = fm.v(x, s, t, **cond)
    student = x + expand_time(t - s, x) * student_v
    return (student - target) / expand_time(delta, x)
