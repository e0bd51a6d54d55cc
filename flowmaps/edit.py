"""Restoration and editing with a trained flow map: the flow-map form of SDEdit, denoising of an
input with known Gaussian noise, the diagonal's one-call posterior mean, and inpainting.

Time convention: t = 0 is noise, t = 1 is data; the interpolant is I_t = (1 - t) sigma eps + t x
(the linear one: runs trained with another are refused by :func:`check_linear`).
Shapes: inputs x are [B, ...] in the data's scale (images in [-1, 1]); masks broadcast to x.
Every function costs N network calls (N = ``steps``) except :func:`posterior_mean` (one).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .errors import InputError, InterpolantError
from .flow_map import FlowMap
from .sampling import sample_map, uniform_grid


def check_linear(interpolant: str, what: str) -> None:
    """Refuse, in one line, a run trained with a non-linear interpolant (``interpolant: trig``):
    the point on the path :func:`to_time`, the noise-level time and the posterior mean here are
    the linear interpolant's. Sampling, encoding and decoding do not depend on it (every
    interpolant starts at the same noise and ends at the data)."""
    if interpolant != "linear":
        raise InterpolantError(f"{what} uses the linear interpolant's formulas and this run was trained with "
                               f"interpolant={interpolant}; retrain with --set interpolant=linear")


def start_time(strength: float) -> float:
    """The time an edit starts from, t0 = 1 - strength; strength must lie in (0, 1]."""
    if not 0 < strength <= 1:
        raise InputError(f"the strength must lie in (0, 1] (1: ignore the input, small: keep it), got {strength}")
    return 1.0 - float(strength)


def noise_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal draws shaped like x, drawn on the CPU (the same numbers on every device)."""
    return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(device=x.device, dtype=x.dtype)


def to_time(x: Tensor, t: float, sigma: float, eps: Tensor) -> Tensor:
    """I_t = (1 - t) sigma eps + t x: the input moved to time t on the interpolant, [B, ...]."""
    return (1.0 - t) * sigma * eps + t * x


@torch.no_grad()
def edit(fm: FlowMap, x: Tensor, strength: float, steps: int, sigma: float,
         generator: torch.Generator | None = None, **cond: Any) -> Tensor:
    """SDEdit with a flow map: x [B, ...] goes to t0 = 1 - strength with fresh noise, then the map
    carries it to data over a uniform grid t0 -> 1 in ``steps`` calls. Strength 1 is plain
    sampling from that noise; a small strength returns a nearby point of the data distribution."""
    t0 = start_time(strength)
    return sample_map(fm, to_time(x, t0, sigma, noise_like(x, generator)), uniform_grid(steps, t0, 1.0), **cond)


def noise_level_time(sigma: float, noise_std: float) -> float:
    """The time at which an input carrying Gaussian noise of std ``noise_std`` sits on the
    interpolant once scaled by t: t (x + noise_std n) = t x + (1 - t) sigma n when
    t noise_std = (1 - t) sigma, i.e. t = sigma / (sigma + noise_std)."""
    if not noise_std > 0:
        raise InputError(f"the noise level must be positive, got {noise_std}")
    return sigma / (sigma + noise_std)


@torch.no_grad()
def denoise(fm: FlowMap, y: Tensor, noise_std: float, steps: int, sigma: float, **cond: Any) -> Tensor:
    """Restore y = x + noise_std n [B, ...] (Gaussian noise of a known level) without adding noise:
    t y lies on the interpolant at t = :func:`noise_level_time`, with the input's own noise as eps;
    the map carries it to data in ``steps`` calls. Deterministic: a sharp sample consistent with y."""
    t0 = noise_level_time(sigma, noise_std)
    return sample_map(fm, t0 * y, uniform_grid(steps, t0, 1.0), **cond)


@torch.no_grad()
def denoised(fm: FlowMap, z: Tensor, t: float, **cond: Any) -> Tensor:
    """E[x1 | I_t = z] = z + (1 - t) b_t(z) [B, ...] (linear interpolant), one call of the diagonal."""
    tt = torch.full((z.shape[0],), t, dtype=z.dtype, device=z.device)
    return z + (1.0 - t) * fm.velocity(z, tt, **cond)


def posterior_mean(fm: FlowMap, y: Tensor, noise_std: float, sigma: float, **cond: Any) -> Tensor:
    """E[x | y] for y = x + noise_std n [B, ...], in one call: t y lies on the interpolant at
    t = :func:`noise_level_time`, and :func:`denoised` gives the mean there. The least-squares
    estimate: the best PSNR, but blurred where the data are uncertain."""
    t0 = noise_level_time(sigma, noise_std)
    return denoised(fm, t0 * y, t0, **cond)


INPAINT_SCHEMES = ("jump", "replace")


@torch.no_grad()
def inpaint(fm: FlowMap, x: Tensor, known: Tensor, steps: int, sigma: float, strength: float = 1.0,
            generator: torch.Generator | None = None, scheme: str = "jump", **cond: Any) -> Tensor:
    """Fill the unknown part of x [B, ...] where ``known`` (bool or {0, 1}, broadcast to x) is 0.

    Both schemes start at t0 = 1 - strength from the input with its unknown part set to 0 (the
    middle of the data range), take N = ``steps`` calls over a uniform grid t0 -> 1, and return
    the known part of x exactly.

    - ``jump``: at each grid time t_k jump to data with X_{t_k, 1}, put the known values back,
      and return to t_{k+1} on the interpolant with fresh noise: every step sees the known
      values at full resolution.
    - ``replace``: step along the grid with X_{t_k, t_{k+1}} and replace the known part with the
      input on the interpolant at t_{k+1} (the starting noise kept), the classical scheme.
    """
    if scheme not in INPAINT_SCHEMES:
        raise InputError(f"unknown inpainting scheme {scheme!r}; choose one of {', '.join(INPAINT_SCHEMES)}")
    t0 = start_time(strength)
    m = torch.broadcast_to(known.to(device=x.device, dtype=x.dtype), x.shape)
    grid = uniform_grid(steps, t0, 1.0).tolist()
    eps = noise_like(x, generator)
    xt = to_time(m * x, t0, sigma, eps)
    for a, b in zip(grid[:-1], grid[1:]):
        s = torch.full((x.shape[0],), a, dtype=x.dtype, device=x.device)
        if scheme == "jump":
            x1 = m * x + (1 - m) * fm.X(xt, s, torch.ones_like(s), **cond)
            xt = to_time(x1, b, sigma, noise_like(x, generator)) if b < 1.0 else x1
        else:
            xt = fm.X(xt, s, torch.full_like(s, b), **cond)
            xt = m * to_time(x, b, sigma, eps) + (1 - m) * xt
    return m * x + (1 - m) * xt
