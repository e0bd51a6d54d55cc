"""Magnitude-preserving layers of EDM2 (Karras et al. 2024), as the paper's UNet uses them.

All are elementwise or linear, so forward-mode AD (the LSD JVP) passes through them. Each has
an explicit tangent rule beside it (``*_jvp``: primal and tangent from plain operations, a tangent
of ``None`` being zero), which :meth:`flowmaps.nets.edm2.EDM2UNet.forward_jvp` is built from.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _acc(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float32, or float64 for float64 inputs."""
    return torch.promote_types(dtype, torch.float32)


def normalize(x: Tensor, dim: list[int] | None = None, eps: float = 1e-4) -> Tensor:
    """Scale each slice along ``dim`` (default: all but the first) to norm sqrt(its size)."""
    return normalize_jvp(x, None, list(range(1, x.ndim)) if dim is None else dim, eps)[0]


def normalize_jvp(x: Tensor, dx: Tensor | None, dim: list[int], eps: float = 1e-4) -> tuple[Tensor, Tensor | None]:
    """:func:`normalize` and its tangent: with N = eps + a |x|, y = x / N,
    dy = (dx - y dN) / N and dN = a <x, dx> / |x| (a = sqrt(|norm| / |x|), the size factor)."""
    acc = _acc(x.dtype)
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=acc)
    alpha = float(np.sqrt(norm.numel() / x.numel()))
    denom = torch.add(eps, norm, alpha=alpha).to(x.dtype)
    y = x / denom
    if dx is None:
        return y, None
    d_norm = (x.to(acc) * dx.to(acc)).sum(dim=dim, keepdim=True) * alpha / norm.clamp_min(1e-30)
    return y, (dx.to(x.dtype) - y * d_norm.to(x.dtype)) / denom


MP_SILU_GAIN = 1.0 / 0.596


def mp_silu(x: Tensor) -> Tensor:
    """SiLU scaled to unit magnitude for unit-variance input."""
    return F.silu(x) * MP_SILU_GAIN


def mp_sum(a: Tensor, b: Tensor, t: float = 0.5) -> Tensor:
    """((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)."""
    c = math.sqrt((1 - t) ** 2 + t**2)
    if t == 1:
        return b / c
    # (a + b t / (1 - t)) (1 - t) / c: an add with alpha and one scaling, the fewest ops under forward AD
    return torch.add(a, b, alpha=t / (1 - t)) * ((1 - t) / c)


def mp_sum_jvp(a: Tensor, da: Tensor | None, b: Tensor, db: Tensor | None, t: float = 0.5) -> tuple[Tensor, Tensor | None]:
    """:func:`mp_sum` and its tangent (it is linear)."""
    c = math.sqrt((1 - t) ** 2 + t**2)
    if da is None and db is None:
        tangent = None
    elif da is None or t == 1:
        tangent = None if db is None else db * (t / c)
    elif db is None:
        tangent = da * ((1 - t) / c)
    else:
        tangent = mp_sum(da, db, t)
    return mp_sum(a, b, t), tangent


def mp_cat(a: Tensor, b: Tensor, dim: int = 1, t: float = 0.5) -> Tensor:
    """Concatenate with balance t, preserving the overall magnitude."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c / math.sqrt(na) * (1 - t)), b * (c / math.sqrt(nb) * t)], dim=dim)


def mp_cat_jvp(a: Tensor, da: Tensor | None, b: Tensor, db: Tensor | None, dim: int = 1,
               t: float = 0.5) -> tuple[Tensor, Tensor | None]:
    """:func:`mp_cat` and its tangent (it is linear)."""
    if da is None and db is None:
        return mp_cat(a, b, dim, t), None
    return mp_cat(a, b, dim, t), mp_cat(torch.zeros_like(a) if da is None else da,
                                        torch.zeros_like(b) if db is None else db, dim, t)


def positional_embedding(tau: Tensor, channels: int, max_period: float = 10000.0) -> Tensor:
    """[cos(tau f_k) sqrt2, sin(tau f_k) sqrt2], f_k = exp(-ln(max_period) k / (channels/2)).

    tau: [B] raw times in [0, 1] (no x1000 scaling, as the paper). Returns [B, channels] in
    float32 (float64 for float64 times).
    """
    return positional_embedding_jvp(tau, None, channels, max_period)[0]


def positional_embedding_jvp(tau: Tensor, dtau: Tensor | None, channels: int,
                             max_period: float = 10000.0) -> tuple[Tensor, Tensor | None]:
    """:func:`positional_embedding` and its tangent along dtau [B]: f_k dtau [-sin, cos] sqrt2."""
    half, dtype = channels // 2, _acc(tau.dtype)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=tau.device, dtype=dtype) / half)
    arg = tau.to(dtype)[:, None] * freqs[None, :]
    cos, sin = torch.cos(arg), torch.sin(arg)
    primal = torch.cat([cos, sin], dim=1) * math.sqrt(2)
    if dtau is None:
        return primal, None
    darg = dtau.to(dtype)[:, None] * freqs[None, :]
    return primal, torch.cat([-sin * darg, cos * darg], dim=1) * math.sqrt(2)


class _Conv2d(torch.autograd.Function):
    """conv2d whose forward-mode rule is the single convolution conv(dx, w).

    PyTorch's built-in rule runs three convolutions per JVP (torch 2.13). flowmaps only takes
    JVPs in x, s and t, never in the parameters, so the weight's tangent (which torch.func
    materialises as zeros) is ignored and one convolution suffices. The rule is itself built from
    this function, so backpropagating through a JVP (LSD's gradient) stays exact.
    """

    @staticmethod
    def forward(x: Tensor, w: Tensor, padding: int) -> Tensor:  # type: ignore[override]
        return F.conv2d(x, w, padding=padding)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        x, w, padding = inputs
        ctx.save_for_backward(x, w)
        ctx.padding = padding
        ctx.input, ctx.weight = x, w  # read by jvp (forward mode), which runs right after forward

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(x.shape, w, grad, padding=ctx.padding)
        if ctx.needs_input_grad[1]:
            gw = torch.nn.grad.conv2d_weight(x, w.shape, grad, padding=ctx.padding)
        return gx, gw, None

    @staticmethod
    def jvp(ctx, dx: Tensor | None, _dw: Tensor | None, _dpad: None):  # type: ignore[override]
        if dx is None:
            return torch.zeros_like(F.conv2d(ctx.input, ctx.weight, padding=ctx.padding))
        return _Conv2d.apply(dx, ctx.weight, ctx.padding)


def conv2d(x: Tensor, w: Tensor, padding: int = 0) -> Tensor:
    """F.conv2d (stride 1, no bias) with a lean forward-mode rule; see :class:`_Conv2d`.

    Inside a compiled graph it is plain ``F.conv2d``: Dynamo cannot trace an autograd Function
    with a ``jvp`` (a graph break per layer), and compiled steps take their tangents from the
    networks' explicit tangent passes, never from forward-mode AD."""
    if torch.compiler.is_compiling():
        return F.conv2d(x, w, padding=padding)
    return _Conv2d.apply(x, w, padding)


class MPConv(nn.Module):
    """Convolution (or linear layer for ``kernel=()``) with normalised weights and no bias.

    At use time w_eff = normalize(w) * gain / sqrt(fan_in). :meth:`force_normalize` projects the
    stored weight back onto the sphere (EDM2's forced weight normalisation); the trainer calls it
    after every optimizer step.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))
        self._shared: Tensor | None = None
        self._share = False

    def normalized_weight(self) -> Tensor:
        """normalize(weight), computed once per :func:`shared_weights` block (with its graph).

        A copy computed without gradient (a teacher call under ``torch.no_grad`` that came first
        in the step) is never handed to a call that needs the gradient: that call computes and
        caches one with its graph."""
        cached = self._shared
        if self._share and cached is not None and (cached.requires_grad or not (torch.is_grad_enabled()
                                                                                and self.weight.requires_grad)):
            return cached
        w = normalize(self.weight.to(_acc(self.weight.dtype)))
        if self._share and (cached is None or w.requires_grad):
            self._shared = w
        return w

    def effective_weight(self, gain: float | Tensor, dtype: torch.dtype) -> Tensor:
        """normalize(w) gain / sqrt(fan_in), in ``dtype``."""
        w = self.normalized_weight()
        return (w * (gain / math.sqrt(w[0].numel()))).to(dtype)

    def forward(self, x: Tensor, gain: float | Tensor = 1.0) -> Tensor:
        w = self.effective_weight(gain, x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return conv2d(x, w, padding=w.shape[-1] // 2)

    def forward_jvp(self, x: Tensor, dx: Tensor | None, gain: float | Tensor = 1.0) -> tuple[Tensor, Tensor | None]:
        """(layer(x), layer(dx)): one product or convolution over the primal and tangent stacked
        along the batch (plain ``F.conv2d``: no custom autograd rule enters a compiled graph)."""
        if dx is None:
            return self.forward(x, gain), None
        w = self.effective_weight(gain, x.dtype)
        both = torch.cat([x, dx.to(x.dtype)])
        out = both @ w.t() if w.ndim == 2 else F.conv2d(both, w, padding=w.shape[-1] // 2)
        return out[: x.shape[0]], out[x.shape[0]:]

    @torch.no_grad()
    def force_normalize(self) -> None:
        self.weight.copy_(normalize(self.weight.to(_acc(self.weight.dtype))))


@contextlib.contextmanager
def shared_weights(module: nn.Module) -> Iterator[None]:
    """Within the block, each :class:`MPConv` normalises its weight once and reuses it.

    One training step evaluates the network several times with the same parameters (diagonal,
    JVP, teacher); this removes the repeated weight normalisations. Gradients are unchanged.
    Do not change the parameters inside the block.
    """
    convs = [m for m in module.modules() if isinstance(m, MPConv)]
    for m in convs:
        m._share, m._shared = True, None
    try:
        yield
    finally:
        for m in convs:
            m._share, m._shared = False, None


def force_normalize(module: nn.Module) -> None:
    """Forced weight normalisation of every :class:`MPConv` inside ``module``."""
    for m in module.modules():
        if isinstance(m, MPConv):
            m.force_normalize()
