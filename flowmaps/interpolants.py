"""Stochastic interpolants I_t = alpha_t x0 + beta_t x1 (paper eq 1).

Time convention everywhere in flowmaps: **t = 0 is noise, t = 1 is data**.
x0 ~ N(0, sigma^2 I) is the base (noise) sample and x1 ~ rho_1 the data sample.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

Sigma = Union[float, str]


def expand_time(t: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample times ``t`` [B] so they broadcast against ``like`` [B, ...]."""
    return t.reshape(t.shape[0], *([1] * (like.ndim - 1)))


@dataclass
class InterpolantSample:
    """One draw of the interpolant; every tensor has the batch as its first dimension.

    x0, x1, x_t, dx_t: [B, ...] (same shape); t: [B].
    dx_t is the time derivative of I_t along the pair (x0, x1), the conditional velocity.
    """

    x0: Tensor
    x1: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor


class Interpolant(ABC):
    """I_t = alpha(t) x0 + beta(t) x1 with alpha(0) = 1, alpha(1) = 0, beta(0) = 0, beta(1) = 1."""

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def beta(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def dalpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def dbeta(self, t: Tensor) -> Tensor: ...

    def position(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """I_t(x0, x1), shape of x0; t: [B]."""
        return expand_time(self.alpha(t), x0) * x0 + expand_time(self.beta(t), x0) * x1

    def velocity(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """d/dt I_t(x0, x1), the conditional velocity; shape of x0; t: [B]."""
        return expand_time(self.dalpha(t), x0) * x0 + expand_time(self.dbeta(t), x0) * x1

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> InterpolantSample:
        """Evaluate the interpolant and its time derivative at per-sample times t [B]."""
        return InterpolantSample(x0, x1, t, self.position(x0, x1, t), self.velocity(x0, x1, t))


class LinearInterpolant(Interpolant):
    """alpha_t = 1 - t, beta_t = t: the interpolant of every experiment in the paper."""

    def alpha(self, t: Tensor) -> Tensor:
        return 1 - t

    def beta(self, t: Tensor) -> Tensor:
        return t

    def dalpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def dbeta(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


class TrigInterpolant(Interpolant):
    """alpha_t = cos(pi t / 2), beta_t = sin(pi t / 2) (defined in the authors' code, unused there)."""

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def beta(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def dalpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def dbeta(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


INTERPOLANTS: dict[str, type[Interpolant]] = {"linear": LinearInterpolant, "trig": TrigInterpolant}


def get_interpolant(name: str) -> Interpolant:
    """Interpolant by name: 'linear' (the paper's) or 'trig'."""
    if name not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {name!r}; choose one of {sorted(INTERPOLANTS)}")
    return INTERPOLANTS[name]()


def resolve_sigma(sigma: Sigma, data: Tensor | None = None) -> float:
    """Base noise scale: a positive number, or 'adaptive' = the scalar std of ``data`` (paper, 2D)."""
    if isinstance(sigma, str):
        if sigma != "adaptive":
            raise ValueError(f"sigma must be a positive number or 'adaptive', got {sigma!r}")
        if data is None:
            raise ValueError("sigma='adaptive' needs the data to measure its standard deviation")
        return float(data.double().std())
    value = float(sigma)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"sigma must be a positive finite number or 'adaptive', got {sigma!r}")
    return value


def sample_base(like: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """x0 = sigma * N(0, I) with the shape, dtype and device of ``like``."""
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return sigma * noise
