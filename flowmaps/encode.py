"""Encoding (data -> noise) and decoding (noise -> data) with a flow map trained on the full
square of times (``loss.full_square=true``), which jumps backwards as well as forwards.

Time convention: t = 0 is noise, t = 1 is data. A code z [B, ...] is the noise end of the
map's path scaled to a standard normal: z = X_{1,0}(x) / sigma, so codes of data follow N(0, I)
when the map is exact. Each direction costs N network calls over a uniform grid.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .errors import NotInvertibleError
from .flow_map import FlowMap
from .sampling import sample_map, uniform_grid


def check_invertible(full_square: bool) -> None:
    """Refuse a map trained only forward, with the fix."""
    if not full_square:
        raise NotInvertibleError("this run was trained only forward (s <= t), so it cannot encode; "
                                 "train with --set loss.full_square=true")


@torch.no_grad()
def encode(fm: FlowMap, x: Tensor, steps: int, sigma: float, **cond: Any) -> Tensor:
    """Codes z = X_{1,0}(x) / sigma [B, ...] of data x [B, ...], over ``steps`` backward jumps."""
    return sample_map(fm, x, uniform_grid(steps, 1.0, 0.0), **cond) / sigma


@torch.no_grad()
def decode(fm: FlowMap, z: Tensor, steps: int, sigma: float, **cond: Any) -> Tensor:
    """Data X_{0,1}(sigma z) [B, ...] from codes z [B, ...], over ``steps`` forward jumps."""
    return sample_map(fm, sigma * z, steps, **cond)


def slerp(z0: Tensor, z1: Tensor, w: float) -> Tensor:
    """Spherical interpolation between codes (per item; [B, ...] each): unlike a straight line it
    keeps the norm that Gaussian codes have, so the midpoints decode to typical data."""
    a, b = z0.flatten(1), z1.flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    so = torch.sin(omega)
    lin = so.abs() < 1e-6  # (anti)parallel codes: fall back to the straight line
    ca = torch.where(lin, torch.full_like(so, 1 - w), torch.sin((1 - w) * omega) / so.where(~lin, torch.ones_like(so)))
    cb = torch.where(lin, torch.full_like(so, w), torch.sin(w * omega) / so.where(~lin, torch.ones_like(so)))
    return (ca[:, None] * a + cb[:, None] * b).view_as(z0)


def code_nll(z: Tensor) -> Tensor:
    """-log N(z; 0, I) per item divided by the dimension [B]: 0.5 z^2 averaged + 0.5 log 2 pi.
    The density of the code, not of the data (no Jacobian term)."""
    return 0.5 * z.flatten(1).pow(2).mean(1) + 0.5 * math.log(2 * math.pi)
