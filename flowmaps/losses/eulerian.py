"""Eulerian losses: ESD (paper eq 14), EMD (eq 29) and MeanFlow (eq 42).

All residuals are evaluated at x = I_s [B, ...] with per-sample times s, t [B]; t = 0 is noise.
The Eulerian condition (eq 9) is d/ds X_{s,t}(x) + grad_x X_{s,t}(x) b_s(x) = 0.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ..flow_map import FlowMap
from ..interpolants import expand_time
from ..jvp import JVPBackend
from .lagrangian import Velocity

EulerianStopGrad = Literal["full", "convex", "none", "semigradient"]
EULERIAN_STOPGRADS: tuple[str, ...] = ("full", "convex", "none", "semigradient")


def eulerian_residual(
    fm: FlowMap,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    b: Tensor,
    stopgrad: EulerianStopGrad = "full",
    backend: JVPBackend = "auto",
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """The Eulerian residual with advecting velocity ``b`` [B, ...] (already evaluated at x).

    stopgrad:
      - "full" (the paper's ESD): r = d/ds X_{s,t}(x) + sg(grad_x X_{s,t}(x) b); the gradient
        flows only through d/ds X (one JVP in s with gradient, one spatial JVP without).
      - "convex": r = d/ds X + grad_x X b, both with gradient (``b`` as given). One fused JVP
        of (s, x) -> X with tangent (1, b).
      - "none": as "convex"; pass a ``b`` that carries gradient for no stop-gradient at all.
      - "semigradient" (eqs 38-39, Align Your Flow / MeanFlow form, in v):
        r = v_{s,t}(x) - sg(b + (t-s)[d/ds v_{s,t}(x) + grad_x v_{s,t}(x) b]). Its value is
        minus the X-form residual; its gradient is the regression gradient through v alone.
        ``student_v`` may carry a precomputed v_{s,t}(x) with gradient.
    """
    if stopgrad == "full":
        _, ds = fm.X_and_ds(x, s, t, backend, **cond)
        with torch.no_grad():
            _, adv = fm.X_and_dx(x, s, t, b.detach(), backend, **cond)
        return ds + adv
    if stopgrad in ("convex", "none"):
        return jvp_total_X(fm, x, s, t, b, backend, **cond)
    if stopgrad == "semigradient":
        with torch.no_grad():
            _, dv = fm.v_and_total(x, s, t, b.detach(), torch.ones_like(s), torch.zeros_like(t), backend, **cond)
            target = b + expand_time(t - s, x) * dv
        if student_v is None:
            student_v = fm.v(x, s, t, **cond)
        return student_v - target
    raise ValueError(f"unknown Eulerian stop-gradient {stopgrad!r}; choose one of {list(EULERIAN_STOPGRADS)}")


def jvp_total_X(fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, b: Tensor, backend: JVPBackend, **cond: Any) -> Tensor:
    """d/ds X_{s,t}(x) + grad_x X_{s,t}(x) b from one fused JVP of (s, x) -> X with tangent (1, b)."""
    return fm.X_jvp(x, s, t, b, torch.ones_like(s), None, backend, **cond)[1]


def esd_residual(
    fm: FlowMap,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    stopgrad: EulerianStopGrad = "full",
    backend: JVPBackend = "auto",
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """ESD, eq 14: d/ds X_{s,t}(I_s) + grad_x X_{s,t}(I_s) b with b = v_{s,s}(I_s), the network's
    own diagonal. b is stop-gradiented except for stopgrad="none". Default "full" is the paper's."""
    if stopgrad == "none":
        b = fm.velocity(x, s, **cond)
    else:
        with torch.no_grad():
            b = fm.velocity(x, s, **cond)
    return eulerian_residual(fm, x, s, t, b, stopgrad, backend, student_v, **cond)


def emd_residual(
    fm: FlowMap,
    teacher: Velocity,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    backend: JVPBackend = "auto",
    **cond: Any,
) -> Tensor:
    """EMD with the semigradient fix, eq 29: d/ds X_{s,t}(I_s) + sg(grad_x X_{s,t}(I_s) b_s(I_s)), b frozen."""
    with torch.no_grad():
        b = teacher(x, s)
    return eulerian_residual(fm, x, s, t, b, "full", backend, **cond)


def meanflow_residual(
    fm: FlowMap,
    x: Tensor,
    s: Tensor,
    t: Tensor,
    dx: Tensor,
    backend: JVPBackend = "auto",
    student_v: Tensor | None = None,
    **cond: Any,
) -> Tensor:
    """MeanFlow, eq 42: v_{s,t}(I_s) - sg(dI_s + (t-s)[d/ds v_{s,t}(I_s) + grad_x v_{s,t}(I_s) dI_s]).

    The Eulerian semigradient with the conditional velocity dI_s [B, ...] in place of a teacher.
    MeanFlow's own (r, t) run data -> noise; here its t is our s and its r our t.
    """
    return eulerian_residual(fm, x, s, t, dx, "semigradient", backend, student_v, **cond)
