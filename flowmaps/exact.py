"""Problems with a known flow map, for tests and map-error metrics.

With x1 ~ N(m, diag(c)), x0 ~ N(0, sigma^2 I) and the linear interpolant, I_t is Gaussian with
mean mu_t = t m and per-dimension std_t = sqrt((1-t)^2 sigma^2 + t^2 c), and the flow map is affine:
X_{s,t}(x) = mu_t + (std_t / std_s)(x - mu_s). For a mixture of such Gaussians the velocity is the
posterior-weighted mix of the component velocities (closed form) and the map is an accurate ODE solve.
Time convention: t = 0 is noise, t = 1 is data. Shapes: x [B, D], s, t [B].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
        return self.sample_components(n, generator)[0]

    def sample_components(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(x [n, D], the component k [n] each point was drawn from)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.vars[k].sqrt() * z, k

    def velocity(self, x: Tensor, t: Tensor, log_prior: Tensor | None = None) -> Tensor:
        """Closed-form b_t(x) = sum_k p(k | I_t = x) b^k_t(x), [B, D].

        ``log_prior`` [B, K] replaces log(weights) per sample (e.g. -inf outside a class: the
        velocity of the data restricted to some components)."""
        tt = t.reshape(-1, 1, 1)
        mu = tt * self.means  # [B, K, D]
        var = (1 - tt) ** 2 * self.sigma**2 + tt**2 * self.vars
        diff = x[:, None, :] - mu
        prior = torch.log(self.weights) if log_prior is None else log_prior
        logp = -0.5 * (diff**2 / var + torch.log(var)).sum(-1) + prior
        post = torch.softmax(logp, dim=1)  # [B, K]
        bk = self.means + ((tt - 1) * self.sigma**2 + tt * self.vars) / var * diff
        return (post[..., None] * bk).sum(1)

    def X(self, x: Tensor, s: Tensor, t: Tensor, steps: int = 256) -> Tensor:
        """The map by RK4 on the exact velocity with ``steps`` steps (float64 recommended)."""
        return rk4(self.velocity, x, s, t, steps)


def rk4(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, s: Tensor, t: Tensor, steps: int) -> Tensor:
    """Integrate dx/dtau = velocity(x, tau) from s to t [B] with ``steps`` RK4 steps: [B, D]."""
    h = (t - s) / steps
    y, tau = x, s
    for _ in range(steps):
        k1 = velocity(y, tau)
        k2 = velocity(y + 0.5 * _col(h) * k1, tau + 0.5 * h)
        k3 = velocity(y + 0.5 * _col(h) * k2, tau + 0.5 * h)
        k4 = velocity(y + _col(h) * k3, tau + h)
        y = y + _col(h) * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        tau = tau + h
    return y


@dataclass
class ClassMixtureProblem:
    """A Gaussian mixture whose components carry class labels ``classes`` [K] in 0..C-1: the
    exact conditional, unconditional and guided velocities and maps (App. F.5's test problem).

    Labels y [B] in 0..C-1; the value C is the null label (unconditional). The guided velocity is
    q_t(x; alpha, c) = b_t(x) + alpha (b_t(x; c) - b_t(x)) (eq 99).
    """

    mixture: GaussianMixtureProblem
    classes: Tensor

    @property
    def num_classes(self) -> int:
        return int(self.classes.max()) + 1

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(x [n, D], y [n]): points and the class of the component each came from."""
        x, k = self.mixture.sample_components(n, generator)
        return x, self.classes[k]

    def velocity(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        """b_t(x; y) [B, D]: the velocity of the class-y data (unconditional where y is null)."""
        log_w = torch.log(self.mixture.weights).to(x.dtype).expand(x.shape[0], -1)
        member = self.classes[None, :] == y[:, None]
        null = (y == self.num_classes)[:, None]
        return self.mixture.velocity(x, t, torch.where(member | null, log_w, torch.full_like(log_w, -torch.inf)))

    def guided_velocity(self, x: Tensor, t: Tensor, y: Tensor, alpha: float | Tensor) -> Tensor:
        """q_t(x; alpha, y) [B, D] (eq 99); alpha a float or [B]."""
        b_u = self.velocity(x, t, torch.full_like(y, self.num_classes))
        a = alpha if isinstance(alpha, float) else _col(alpha.to(x.dtype))
        return b_u + a * (self.velocity(x, t, y) - b_u)

    def X(self, x: Tensor, s: Tensor, t: Tensor, y: Tensor, alpha: float | Tensor = 1.0, steps: int = 256) -> Tensor:
        """The exact guided map X_{s,t}(x; alpha, y) by RK4 on q (float64 recommended)."""
        return rk4(lambda z, tau: self.guided_velocity(z, tau, y, alpha), x, s, t, steps)


class ExactGuidedNet(nn.Module):
    """A network whose v_{s,t}(x; alpha, y) is the exact guided chord slope of a
    :class:`ClassMixtureProblem` (RK4 with ``steps`` steps; the guided velocity itself at t = s),
    for tests of the guided losses: ``FlowMap(ExactGuidedNet(problem), time_input="s_t")``.
    ``alpha_shift`` adds to the alpha it is given: a map that follows the wrong guidance scale."""

    guidance = True

    def __init__(self, problem: ClassMixtureProblem, steps: int = 64, alpha_shift: float = 0.0) -> None:
        super().__init__()
        self.problem, self.steps, self.alpha_shift = problem, steps, alpha_shift
        self.num_classes = problem.num_classes
        self.dummy = nn.Parameter(torch.zeros((), dtype=problem.mixture.means.dtype))

    def forward(self, x: Tensor, s: Tensor, t: Tensor, y: Tensor | None = None, alpha: Tensor | None = None) -> Tensor:
        assert y is not None
        a = (torch.ones_like(s) if alpha is None else alpha) + self.alpha_shift
        gap = t - s
        chord = (self.problem.X(x, s, t, y, a, self.steps) - x) / _col(torch.where(gap == 0, torch.ones_like(gap), gap))
        q = self.problem.guided_velocity(x, s, y, a)
        return torch.where(_col(gap) == 0, q, chord) + self.dummy


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
