"""Time sampling for the diagonal and off-diagonal terms. t = 0 is noise, t = 1 is data."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _uniform(n: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.rand(n, generator=generator, device=device, dtype=dtype)


TIME_SAMPLINGS: tuple[str, ...] = ("uniform", "logit_normal", "uniform_gap")


def sample_time(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    kind: str = "uniform",
    mu: float = 0.0,
    std: float = 1.0,
) -> Tensor:
    """n times in [0, 1], shape [n]: ``uniform``, or ``logit_normal``: sigmoid(mu + std z) with
    z ~ N(0, 1) (the time sampling of SD3 and MeanFlow; mu > 0 puts more times near the data,
    since t = 1 is data here). ``uniform_gap`` only changes the off-diagonal pairs; a single
    time is uniform."""
    device = torch.device(device)
    if kind in ("uniform", "uniform_gap"):
        return _uniform(n, generator, device, dtype)
    if kind == "logit_normal":
        z = torch.randn(n, generator=generator, device=device, dtype=dtype)
        return torch.sigmoid(mu + std * z)
    raise ValueError(f"unknown time sampling {kind!r}; choose one of {', '.join(TIME_SAMPLINGS)}")


def _banded(n: int, full_square: bool, generator: torch.Generator | None, device: torch.device,
            dtype: torch.dtype, kind: str, max_gap: float) -> tuple[Tensor, Tensor]:
    """(s, t) with |t - s| <= m, drawn gap first. ``uniform``: uniform on the band, so the gap g
    has density proportional to 1 - g on [0, m], drawn by inverting its CDF 1 - (1 - g)^2
    (normalised by 2m - m^2); ``uniform_gap``: g ~ U[0, m]. Then s ~ U[0, 1 - g]."""
    if kind not in ("uniform", "uniform_gap"):
        raise ValueError(f"the jump curriculum (max_gap < 1) needs uniform or uniform_gap time sampling, got {kind!r}")
    if not 0.0 < max_gap <= 1.0:
        raise ValueError(f"max_gap must be in (0, 1], got {max_gap}")
    u = _uniform(n, generator, device, dtype)
    if kind == "uniform_gap":
        g = u * max_gap
    else:
        g = 1.0 - torch.sqrt(1.0 - u * (2.0 * max_gap - max_gap**2))
    s = _uniform(n, generator, device, dtype) * (1.0 - g)
    if full_square:  # the band's two halves: backward jumps are the mirror image
        backward = _uniform(n, generator, device, dtype) < 0.5
        lo, hi = s, s + g
        return torch.where(backward, hi, lo), torch.where(backward, lo, hi)
    return s, s + g


sample_diagonal = sample_time
"""The diagonal's t, shape [n]: U[0, 1] (the paper) or logit-normal (see :func:`sample_time`)."""


def sample_off_diagonal(
    n: int,
    full_square: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    kind: str = "uniform",
    mu: float = 0.0,
    std: float = 1.0,
    max_gap: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """(s, t), each [n].

    Upper triangle (the paper): s = min(u1, u2), t = max(u1, u2), uniform on 0 <= s <= t <= 1
    (``kind="logit_normal"``: u1, u2 logit-normal instead, as MeanFlow samples its two times).
    ``full_square``: s, t independent on [0, 1]^2, so the map also learns to jump backwards
    (t < s, data towards noise).
    ``kind="uniform_gap"``: the jump g = t - s uniform on [0, 1], then s ~ U[0, 1 - g]: large
    jumps (the few-step maps; g = 1 is the one-step map) drawn as often as small ones, where the
    uniform triangle gives g the density 2 (1 - g).
    ``max_gap`` < 1 (the jump curriculum of App. F.2, uniform or uniform_gap only): the same on
    the band 0 <= t - s <= max_gap of the triangle (or |t - s| <= max_gap of the square).
    """
    if max_gap < 1.0 or kind == "uniform_gap":
        return _banded(n, full_square, generator, torch.device(device), dtype, kind, max_gap)
    a = sample_time(n, generator, device, dtype, kind, mu, std)
    b = sample_time(n, generator, device, dtype, kind, mu, std)
    if full_square:
        return a, b
    return torch.minimum(a, b), torch.maximum(a, b)


def sample_dyadic(
    n: int,
    max_steps: int = 128,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Shortcut-model times (s, d), each [n]: the jump is [s, s + 2d] on a dyadic grid.

    d = 2^-(k+1) with k uniform in {0, ..., log2(max_steps) - 1}, so 2d ranges over 1, 1/2, ...,
    2 / max_steps; s is uniform over the multiples of d with s + 2d <= 1.
    """
    levels = int(round(math.log2(max_steps)))
    if 2**levels != max_steps or levels < 1:
        raise ValueError(f"shortcut max_steps must be a power of two >= 2, got {max_steps}")
    device = torch.device(device)
    k = torch.randint(0, levels, (n,), generator=generator, device=device)
    d = torch.pow(2.0, -(k + 1).to(torch.float64))
    slots = (1.0 / d).round().long() - 1  # positions j = 0 .. 1/d - 2
    j = (torch.rand(n, generator=generator, device=device, dtype=torch.float64) * slots).floor()
    return (j * d).to(dtype), d.to(dtype)
