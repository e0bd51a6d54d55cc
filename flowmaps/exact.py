"""Problems with a known flow map, for tests and map-error metrics.

With x1 ~ N(m, diag(c)), x0 ~ N(0, sigma^2 I) and the linear interpolant, I_t is Gaussian with
mean mu_t = t m and per-dimension std_t = sqrt((1-t)^2 sigma^2 + t^2 c), and the flow map is affine:
X_{s,t}(x) = mu_t + (std_t / std_s)(x - mu_s). For a mixture of such Gaussians the velocity is the
posterior-weighted mix of the component velocities (closed form) and the map is an accurate ODE solve.
Time convention: t = 0 is noise, t = 1 is data. Shapes: x [B, D], s, t [B].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .interpolants import expand_time


def _col(t: Tensor) -> Tensor:
    return t.reshape(-1, 1)


@dataclass
class GaussianProblem:
    """Data N(mean, diag(var)) [D], base N(0, sigma^2 I), linear interpolant."""

    mean: Tensor
    var: Tensor
    sigma: float

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def mu(self, t: Tensor) -> Tensor:
        """Mean of I_t: [B, D]."""
        return _col(t) * self.mean

    def std(self, t: Tensor) -> Tensor:
        """Per-dimension std of I_t: [B, D]."""
        t = _col(t)
        return torch.sqrt((1 - t) ** 2 * self.sigma**2 + t**2 * self.var)

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.dim, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.var.sqrt() * z

    def X(self, x: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """The exact map mu_t + (std_t / std_s)(x - mu_s)."""
        return self.mu(t) + self.std(t) / self.std(s) * (x - self.mu(s))

    def v(self, x: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """The exact chord slope (X_{s,t}(x) - x) / (t - s), smooth through s = t (equals b_t there)."""
        ss, tt = _col(s), _col(t)
        std_s, std_t = self.std(s), self.std(t)
        ratio = (self.sigma**2 * (tt + ss - 2) + self.var * (tt + ss)) / ((std_t + std_s) * std_s)
        return self.mean + ratio * (x - self.mu(s))

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """b_t(x) = m + (d std_t / dt / std_t)(x - mu_t)."""
        return self.v(x, t, t)

    def conditional_variance(self, t: Tensor) -> Tensor:
        """E|dI_t - b_t(I_t)|^2 summed over dimensions, [B]: the minimum of flow matching at time t."""
        tt = _col(t)
        cov = tt * self.var - (1 - tt) * self.sigma**2
        var = self.var + self.sigma**2 - cov**2 / self.std(t) ** 2
        return var.sum(dim=1)


@dataclass
class GaussianMixtureProblem:
    """Data sum_k w_k N(means_k, diag(vars_k)) with weights [K], means and vars [K, D]."""

    weights: Tensor
    means: Tensor
    vars: Tensor
    sigma: float

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.vars[k].sqrt() * z

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """Closed-form b_t(x) = sum_k p(k | I_t = x) b^k_t(x), [B, D]."""
        tt = t.reshape(-1, 1, 1)
        mu = tt * self.means  # [B, K, D]
        var = (1 - tt) ** 2 * self.sigma**2 + tt**2 * self.vars
        diff = x[:, None, :] - mu
        logp = -0.5 * (diff**2 / var + torch.log(var)).sum(-1) + torch.log(self.weights)
        post = torch.softmax(logp, dim=1)  # [B, K]
        bk = self.means + ((tt - 1) * self.sigma**2 + tt * self.vars) / var * diff
        return (post[..., None] * bk).sum(1)

    def X(self, x: Tensor, s: Tensor, t: Tensor, steps: int = 256) -> Tensor:
        """The map by RK4 on the exact velocity with ``steps`` steps (float64 recommended)."""
        h = (t - s) / steps
        y, tau = x, s
        for _ in range(steps):
            k1 = self.velocity(y, tau)
            k2 = self.velocity(y + 0.5 * _col(h) * k1, tau + 0.5 * h)
            k3 = self.velocity(y + 0.5 * _col(h) * k2, tau + 0.5 * h)
            k4 = self.velocity(y + _col(h) * k3, tau + h)
            y = y + _col(h) * (k1 + 2 * k2 + 2 * k3 + k4) / 6
            tau = tau + h
        return y


class ExactGaussianNet(nn.Module):
    """A network whose v_{s,t} is the exact Gaussian chord slope, with an optional perturbation.

    ``perturb`` eps adds eps * tanh(x + s - t) * (1 + s t): a smooth error that keeps X_{s,s} = id
    (through the flow map's parameterisation) but breaks every characterisation of the map.
    Feed it (s, t): ``FlowMap(ExactGaussianNet(problem), time_input="s_t")``.
    """

    def __init__(self, problem: GaussianProblem, perturb: float = 0.0) -> None:
        super().__init__()
        self.problem = problem
        self.perturb = nn.Parameter(torch.tensor(float(perturb), dtype=problem.mean.dtype))

    def forward(self, x: Tensor, s: Tensor, t: Tensor) -> Tensor:
        bump = torch.tanh(x + expand_time(s - t, x)) * expand_time(1 + s * t, x)
        return self.problem.v(x, s, t) + self.perturb * bump
