"""Explicit tangent rules: layers that return (primal, tangent) from ordinary operations.

A network written with these computes its output and its directional derivative in one forward
pass (forward-mode differentiation by hand), so the JVP of the flow map is plain forward compute:
a compiler can fuse it and reverse-mode autograd differentiates it like any other graph. A tangent
of ``None`` is structurally zero: it costs nothing and stays ``None`` through every linear layer.

Shapes: ``h`` and ``dh`` are [B, ...] alike; ``weight`` as in :func:`torch.nn.functional.linear`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

Tangent = Tensor | None


def linear_jvp(h: Tensor, dh: Tangent, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tangent]:
    """(W h + b, W dh): one matrix product over the primal and tangent rows stacked together."""
    if dh is None:
        return F.linear(h, weight, bias), None
    n = h.shape[0]
    out = F.linear(torch.cat([h, dh.to(h.dtype)]), weight)
    primal = out[:n] if bias is None else out[:n] + bias.to(out.dtype)
    return primal, out[n:]


def silu_jvp(h: Tensor, dh: Tangent) -> tuple[Tensor, Tangent]:
    """silu(h) = h sigmoid(h); tangent dh sigmoid(h) (1 + h (1 - sigmoid(h)))."""
    if dh is None:
        return F.silu(h), None
    sg = torch.sigmoid(h)
    return h * sg, dh * (sg * (1 + h * (1 - sg)))


def gelu_jvp(h: Tensor, dh: Tangent) -> tuple[Tensor, Tangent]:
    """gelu(h) = h Phi(h) (the exact, erf form); tangent dh (Phi(h) + h phi(h))."""
    if dh is None:
        return F.gelu(h), None
    cdf = 0.5 * (1 + torch.erf(h * (1 / math.sqrt(2))))
    pdf = torch.exp(-0.5 * h * h) * (1 / math.sqrt(2 * math.pi))
    return h * cdf, dh * (cdf + h * pdf)


_TANH_C = math.sqrt(2 / math.pi)


def gelu_tanh_jvp(h: Tensor, dh: Tangent) -> tuple[Tensor, Tangent]:
    """The tanh approximation of gelu, 0.5 h (1 + tanh(c (h + 0.044715 h^3))), and its tangent."""
    if dh is None:
        return F.gelu(h, approximate="tanh"), None
    th = torch.tanh(_TANH_C * (h + 0.044715 * h * h * h))
    slope = 0.5 * (1 + th) + 0.5 * h * (1 - th * th) * _TANH_C * (1 + 3 * 0.044715 * h * h)
    return 0.5 * h * (1 + th), dh * slope


def sin_cos_jvp(angles: Tensor, d_angles: Tangent) -> tuple[Tensor, Tensor, Tangent, Tangent]:
    """(sin a, cos a, cos a da, -sin a da)."""
    sin, cos = torch.sin(angles), torch.cos(angles)
    if d_angles is None:
        return sin, cos, None, None
    return sin, cos, cos * d_angles, -sin * d_angles


def cat_jvp(parts: list[tuple[Tensor, Tangent]], dim: int) -> tuple[Tensor, Tangent]:
    """Concatenate (primal, tangent) pairs; a zero tangent becomes zeros only when another is not."""
    primal = torch.cat([p for p, _ in parts], dim)
    if all(d is None for _, d in parts):
        return primal, None
    return primal, torch.cat([torch.zeros_like(p) if d is None else d.to(p.dtype) for p, d in parts], dim)


def add_tangents(*tangents: Tangent) -> Tangent:
    """The sum of tangents, ``None`` standing for zero."""
    present = [d for d in tangents if d is not None]
    if not present:
        return None
    out = present[0]
    for d in present[1:]:
        out = out + d
    return out


def scale_tangent(d: Tangent, factor: Tensor | float) -> Tangent:
    return None if d is None else d * factor
