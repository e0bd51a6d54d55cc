"""Progressive (semigroup) losses: PSD (paper eqs 15, 22), shortcut models (eq 43) and PFMM (eq 30).

All residuals are evaluated at x = I_s [B, ...] with per-sample times s, t [B]; t = 0 is noise.
The semigroup condition (eq 10) is X_{u,t}(X_{s,u}(x)) = X_{s,t}(x).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..flow_map import FlowMap
from ..interpolants import expand_time

MapFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""A flow map X(x [B, ...], s [B], t [B]) -> [B, ...]."""


def intermediate_time(s: Tensor, t: Tensor, gamma: Tensor | float) -> Tensor:
    """u = gamma s + (1 - gamma) t: gamma = 1/2 is the midpoint (PSD-M), gamma ~ U[0,1] is PSD-U."""
    return gamma * s + (1 - gamma) * t


def psd_target(fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, gamma: Tensor | float, **cond: Any) -> Tensor:
    """sg((1 - gamma) v_{s,u}(x) + gamma v_{u,t}(X_{s,u}(x))), u = gamma s + (1 - gamma) t (eq 92).

    The semigroup condition in v-form: the chord slope over [s, t] is the time-weighted average
    of the slopes over [s, u] and [u, t]. Evaluated without gradient with the current weights.
    """
    u = intermediate_time(s, t, gamma)
    g = gamma if isinstance(gamma, float) else expand_time(gamma, x)
    with torch.no_grad():
        v_su = fm.v(x, s, u, **cond)
        x_u = x + expand_time(u - s, x) * v_su
        v_ut = fm.v(x_u, u, t, **cond)
        return (1 - g) * v_su + g * v_ut


def psd_residual(
    fm: FlowMap,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    gamma: Tensor | float,
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """PSD in the preconditioned v-form, eq 22: v_{s,t}(I_s) - :func:`psd_target`.

    Eq 15 written in X carries a factor (t - s); eq 22 drops it ("preconditions the loss").
    gamma: a float (1/2 for PSD-M) or per-sample [B] draws from U[0,1] (PSD-U).
    ``student_v`` may carry a precomputed v_{s,t}(x) with gradient.
    """
    target = psd_target(fm, x, s, t, gamma, **cond)
    if student_v is None:
        student_v = fm.v(x, s, t, **cond)
    return student_v - target


def shortcut_residual(
    fm: FlowMap, x: Tensor, s: Tensor, d: Tensor, student_v: Tensor | None = None, **cond: Any
) -> Tensor:
    """Shortcut models, eq 43: v_{s,s+2d}(x) - sg(1/2 [v_{s,s+d}(x) + v_{s+d,s+2d}(x + d v_{s,s+d}(x))]).

    This is PSD-M (gamma = 1/2) restricted to the dyadic grid: d [B] is a step size 2^-k and s a
    multiple of d (see :func:`flowmaps.losses.times.sample_dyadic`).
    """
    return psd_residual(fm, x, s, s + 2 * d, 0.5, student_v, **cond)


def pfmm_residual(
    fm: FlowMap,
    teacher: MapFn,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    gamma: Tensor | float,
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """Progressive flow map matching, eq 30: X_{s,t}(I_s) - sg(Xc_{u,t}(Xc_{s,u}(I_s))), Xc a frozen map.

    Written in X (not preconditioned), as in the paper. u = gamma s + (1 - gamma) t.
    """
    u = intermediate_time(s, t, gamma)
    with torch.no_grad():
        target = teacher(teacher(x, s, u), u, t)
    if student_v is None:
        student_v = fm.v(x, s, t, **cond)
    return x + expand_time(t - s, x) * student_v - target
