"""Self-distillation of the guided velocity (paper App. F.5, eqs 100-102).

The flow map X_{s,t}(x; alpha, c) takes the guidance scale alpha [B] and labels c = y [B] as
inputs. Its teacher is the guided velocity built from the network's own diagonal under
stop-gradient, q^_t(x; alpha, c) = v_{t,t}(x; 1, null) + alpha (v_{t,t}(x; 1, c) - v_{t,t}(x; 1, null))
(:func:`flowmaps.guidance.guided_velocity`); the diagonal at alpha = 1 is trained by flow matching,
conditionally and, through label dropout, unconditionally.

All residuals are evaluated at x = I_s [B, ...] with per-sample times s, t [B]; t = 0 is noise.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..flow_map import FlowMap
from ..guidance import guided_velocity
from ..jvp import JVPBackend
from .eulerian import EulerianStopGrad, eulerian_residual
from .lagrangian import lagrangian_residual
from .progressive import psd_residual


def guided_lsd_residual(fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, y: Tensor, alpha: Tensor, null_label: int,
                        backend: JVPBackend = "auto") -> Tensor:
    """Guided LSD, eq 100: d/dt X_{s,t}(I_s; alpha, c) - sg(q^_t(sg X_{s,t}(I_s; alpha, c); alpha, c)), [B, ...].

    The Lagrangian condition of the guided flow: at t -> s it is v_{s,s}(x; alpha, c) = q^_s, so the
    diagonal at every alpha is tied to the guided velocity without a separate term.
    """
    return lagrangian_residual(fm, x, s, t, lambda z, tt: guided_velocity(fm, z, tt, y, alpha, null_label),
                               backend, y=y, alpha=alpha)


def guided_esd_residual(fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, y: Tensor, alpha: Tensor, null_label: int,
                        stopgrad: EulerianStopGrad = "full", backend: JVPBackend = "auto",
                        student_v: Tensor | None = None) -> Tensor:
    """Guided ESD, eq 101: d/ds X_{s,t}(I_s; alpha, c) + sg(grad_x X_{s,t}(I_s; alpha, c) sg q^_s(I_s; alpha, c)).

    The advecting velocity is the guided one; ``stopgrad`` as in :func:`flowmaps.losses.eulerian.esd_residual`
    (q^ carries gradient only for "none"). At t = s the residual is q^_s - v_{s,s}(x; alpha, c).
    """
    with torch.set_grad_enabled(stopgrad == "none" and torch.is_grad_enabled()):
        q = guided_velocity(fm, x, s, y, alpha, null_label)
    return eulerian_residual(fm, x, s, t, q, stopgrad, backend, student_v, y=y, alpha=alpha)


def guided_tangent_residual(fm: FlowMap, x: Tensor, s: Tensor, y: Tensor, alpha: Tensor, null_label: int,
                            student_b: Tensor | None = None) -> Tensor:
    """The guided tangent condition v_{s,s}(x; alpha, c) - sg(q^_s(x; alpha, c)), [B, ...].

    ``student_b`` may carry a precomputed v_{s,s}(x; alpha, c) with gradient.
    """
    with torch.no_grad():
        q = guided_velocity(fm, x, s, y, alpha, null_label)
    if student_b is None:
        student_b = fm.velocity(x, s, y=y, alpha=alpha)
    return student_b - q


def guided_psd_residual(fm: FlowMap, x: Tensor, s: Tensor, t: Tensor, y: Tensor, alpha: Tensor, null_label: int,
                        gamma: Tensor | float, student_v: Tensor | None = None) -> Tensor:
    """Guided PSD, eq 102: the PSD residual of the guided map beside the guided tangent residual,
    concatenated along dim 1 ([B, 2D] or [B, 2C, H, W]), so |r|^2 is the sum of both.

    The semigroup condition X_{u,t}(X_{s,u}(x; alpha, c); alpha, c) = X_{s,t}(x; alpha, c) never
    involves the velocity: it alone would leave the diagonal at alpha != 1 untrained (flow matching
    trains alpha = 1 only). The tangent residual pins v_{s,s}(x; alpha, c) to q^_s on the same
    samples; the unguided PSD gets that from flow matching.
    """
    r_semigroup = psd_residual(fm, x, s, t, gamma, student_v, y=y, alpha=alpha)
    r_tangent = guided_tangent_residual(fm, x, s, y, alpha, null_label)
    return torch.cat([r_semigroup, r_tangent], dim=1)
