"""Class conditioning and classifier-free guidance inside the flow map (paper App. F.5).

Labels y [B] are int64 in 0..K-1 for K classes; the value K is the *null label*, meaning
"unconditional". A class-conditional network is trained on both by label dropout
(:func:`drop_labels`). Classifier-free guidance mixes the two velocities:

    q_t(x; alpha, c) = b_t(x; null) + alpha (b_t(x; c) - b_t(x; null))        (eq 99)

alpha = 0 is the unconditional velocity, alpha = 1 the conditional one, alpha > 1 guidance.
An ODE solver pays two network calls per step for it (:func:`guided_velocity`). A *guided flow
map* X_{s,t}(x; alpha, c) takes alpha as an input and learns to follow q (eqs 100-102,
:mod:`flowmaps.losses.guided`), so a guided sample costs one call per step.

Conventions: t = 0 is noise, t = 1 is data. A network "takes alpha" when its ``guidance``
attribute is true; its velocity is then v_{t,t}(x; alpha = 1, c), and alpha defaults to 1.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .flow_map import FlowMap
from .interpolants import expand_time

GuidanceSampling = Literal["uniform", "log_uniform"]
GUIDANCE_SAMPLINGS: tuple[str, ...] = ("uniform", "log_uniform")


def drop_labels(y: Tensor, p: float, null_label: int, generator: torch.Generator | None = None) -> Tensor:
    """Replace each label by ``null_label`` with probability p (label dropout): [B] -> [B]."""
    if p <= 0:
        return y
    drop = torch.rand(y.shape[0], generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null_label), y)


def sample_guidance(n: int, alpha_max: float, kind: str = "uniform", generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """n guidance scales in [0, alpha_max], shape [n].

    ``uniform`` (the default): every scale a user may ask for is trained equally often, and
    alpha = 0 (unconditional) and alpha = 1 (conditional) lie inside the range, not on a sparse
    tail. ``log_uniform``: log(1 + alpha) uniform, which puts more of the batch on the small scales
    (0 to 3) that image users pick most, and fewer on the largest.
    """
    u = torch.rand(n, generator=generator, device=device, dtype=dtype)
    if kind == "uniform":
        return alpha_max * u
    if kind == "log_uniform":
        return torch.expm1(u * math.log1p(alpha_max))
    raise ValueError(f"unknown guidance sampling {kind!r}; choose one of {', '.join(GUIDANCE_SAMPLINGS)}")


def takes_guidance(fm: FlowMap) -> bool:
    """Whether the flow map's network has the guidance-scale input alpha."""
    return bool(getattr(fm.net, "guidance", False))


def guided_velocity(fm: FlowMap, x: Tensor, t: Tensor, y: Tensor, alpha: Tensor | float, null_label: int) -> Tensor:
    """q_t(x; alpha, c) of eq 99 from the network's own velocities, [B, ...].

    b(c) and b(null) are the diagonal v_{t,t} at alpha = 1 (for a network with the alpha input)
    with labels y [B] and the null label, from one network call on the doubled batch.
    alpha: a float or [B]. A sample whose label is already null gets b(null) at any alpha.
    """
    v_c, v_u = velocity_pair(fm, x, t, y, null_label)
    a = alpha if isinstance(alpha, float) else expand_time(alpha.to(v_c.dtype), x)
    return v_u + a * (v_c - v_u)


def velocity_pair(fm: FlowMap, x: Tensor, t: Tensor, y: Tensor, null_label: int) -> tuple[Tensor, Tensor]:
    """(b_t(x; c), b_t(x; null)), each [B, ...]: the diagonal at alpha = 1 with labels y [B] and
    with the null label, from one network call on the doubled batch."""
    B = x.shape[0]
    cond: dict[str, Tensor] = {"y": torch.cat([y, torch.full_like(y, null_label)])}
    if takes_guidance(fm):
        cond["alpha"] = torch.ones(2 * B, device=x.device, dtype=t.dtype)
    v = fm.velocity(torch.cat([x, x]), torch.cat([t, t]), **cond)
    return v[:B], v[B:]


def guided_fm_correction(fm: FlowMap, x: Tensor, t: Tensor, y: Tensor, alpha: Tensor, null_label: int) -> Tensor:
    """sg((alpha - 1)(v_{t,t}(x; 1, c) - v_{t,t}(x; 1, null))), [B, ...]: added to the flow-matching
    target dI_t of a diagonal sample at scale alpha, it makes the regression's minimiser the
    guided velocity: E[dI_t | I_t = x, c] + (alpha - 1)(b(c) - b(null)) = q_t(x; alpha, c) (eq 99)
    when the network's own velocities are exact. So every scale's diagonal is trained directly,
    not only through the distillation term; it is zero at alpha = 1 and for null labels. Only the
    rows with alpha != 1 cost a (doubled, gradient-free) network call (every row inside a
    compiled graph, where shapes cannot depend on the data).
    """
    out = torch.zeros_like(x)
    rows = (alpha != 1) & (y != null_label)
    if torch.compiler.is_compiling():  # a compiled graph has static shapes: every row, the others masked
        with torch.no_grad():
            v_c, v_u = velocity_pair(fm, x, t, y, null_label)
            gain = torch.where(rows, alpha - 1, torch.zeros_like(alpha))
            return (expand_time(gain.to(v_c.dtype), x) * (v_c - v_u)).to(out.dtype)
    if bool(rows.any()):
        with torch.no_grad():
            xs = x[rows]
            v_c, v_u = velocity_pair(fm, xs, t[rows], y[rows], null_label)
            out[rows] = ((expand_time(alpha[rows].to(v_c.dtype), xs) - 1) * (v_c - v_u)).to(out.dtype)
    return out


def class_count(fm: FlowMap) -> int:
    """K, the number of classes of the flow map's network (0: unconditional)."""
    return int(getattr(fm.net, "num_classes", 0))


def null_label(fm: FlowMap) -> int:
    """The null label K of a class-conditional flow map (ValueError for an unconditional one)."""
    k = class_count(fm)
    if k < 1:
        raise ValueError("this flow map is not class-conditional (train with data.conditional=true)")
    return k


def class_condition(fm: FlowMap, labels: Tensor, guidance: float | None = None) -> dict[str, Tensor]:
    """The conditioning of flow-map sampling for labels [B] (0..K-1, or K: unconditional) at
    guidance scale ``guidance`` (None: the plain conditional map, alpha = 1): {"y", "alpha"}.

    At alpha = 0 the guided velocity is the unconditional one for every class (eq 99), so the
    guided map is the unconditional map: it is sampled with the null label, which the network
    learns directly (label dropout), rather than at the edge of the trained range of alpha.

    Raises ValueError for labels outside 0..K, or a scale other than 0 or 1 on a map trained
    without the guidance input (such a run can still be guided by an ODE solver, two calls per step)."""
    k = null_label(fm)
    if labels.dtype != torch.long or labels.ndim != 1 or bool(((labels < 0) | (labels > k)).any()):
        raise ValueError(f"class labels must be integers 0..{k - 1} (or {k}: unconditional), one per sample")
    if guidance is not None and float(guidance) == 0.0:
        labels, guidance = torch.full_like(labels, k), None
    cond = {"y": labels}
    if takes_guidance(fm):
        cond["alpha"] = torch.full(labels.shape, 1.0 if guidance is None else float(guidance), device=labels.device)
    elif guidance is not None and guidance != 1.0:
        raise ValueError("this flow map was trained without the guidance input (loss.guidance_max = 0): sample it "
                         "with an ODE solver (classifier-free guidance, two network calls per step) or train a "
                         "guided map with loss.guidance_max > 0")
    return cond
