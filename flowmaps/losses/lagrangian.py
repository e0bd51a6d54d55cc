"""Lagrangian losses: LSD (paper eq 13), its semigradient form (App. F.4), and LMD (eq 27).

All residuals are evaluated at x = I_s [B, ...] with per-sample times s, t [B]; t = 0 is noise.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..flow_map import FlowMap
from ..interpolants import expand_time
from ..jvp import JVPBackend

Velocity = Callable[[Tensor, Tensor], Tensor]
"""A velocity field b(x [B, ...], t [B]) -> [B, ...]."""


def lagrangian_residual(
    fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, velocity: Velocity, backend: JVPBackend = "auto", **cond: Any
) -> Tensor:
    """r = d/dt X_{s,t}(x) - sg(b_t(sg X_{s,t}(x))), the Lagrangian condition (eq 8) as a residual.

    X and d/dt X come from one forward-mode JVP in t; the gradient flows only through d/dt X
    (backpropagation through the JVP). ``velocity`` is evaluated without gradient at the
    detached transported point.
    """
    X, dX = fm.X_and_dt(x, s, t, backend, **cond)
    with torch.no_grad():
        b = velocity(X.detach(), t)
    return dX - b


def lsd_residual(fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, backend: JVPBackend = "auto", **cond: Any) -> Tensor:
    """LSD, eq 13: d/dt X_{s,t}(I_s) - sg(v_{t,t}(sg X_{s,t}(I_s))).

    The teacher is the network's own diagonal with the *current* weights under stop-gradient
    (the paper: an EMA teacher "offered no gain and sometimes led to instability").
    """
    return lagrangian_residual(fm, x, s, t, lambda y, tt: fm.velocity(y, tt, **cond), backend, **cond)


def lmd_residual(
    fm: FlowMap, teacher: Velocity, x: Tensor, s: Tensor, t: Tensor, backend: JVPBackend = "auto", **cond: Any
) -> Tensor:
    """LMD with the stop-gradient inside, eq 27: d/dt X_{s,t}(I_s) - b_t(sg X_{s,t}(I_s)), b frozen."""
    return lagrangian_residual(fm, x, s, t, teacher, backend, **cond)


def lsd_semigradient_residual(
    fm: FlowMap,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    backend: JVPBackend = "auto",
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """The memory-saving LSD of App. F.4: v_{s,t}(I_s) - sg(v_{t,t}(X_{s,t}(I_s)) - (t-s) d/dt v_{s,t}(I_s)).

    Its value equals :func:`lsd_residual`'s; its gradient is the regression gradient 2 r dv/dtheta,
    without the (t-s) d/dt dv/dtheta term. The JVP runs without gradient, then an ordinary
    forward (``student_v``, computed here when None) carries the gradient.
    """
    with torch.no_grad():
        v, dv = fm.v_and_dt(x, s, t, backend, **cond)
        X = x + expand_time(t - s, x) * v
        target = fm.velocity(X, t, **cond) - expand_time(t - s, x) * dv
    if student_v is None:
        student_v = fm.v(x, s, t, **cond)
    return student_v - target

