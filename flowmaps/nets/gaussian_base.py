"""A network that starts at the closed-form Gaussian flow map of the data and learns the residual.

With data x1 ~ N(m, C) (items flattened to [D]), noise x0 ~ N(0, sigma^2 I) and the linear
interpolant, the exact flow map is affine (:class:`flowmaps.exact.GaussianProblem` in C's
eigenbasis): along an eigendirection u_i of C with variance c_i,

    v^G_{s,t}(x) = m + sum_i r_i(s, t) u_i u_i^T (x - s m),
    r(s, t; c) = ((sigma^2 + c)(s + t) - 2 sigma^2) / ((std_t + std_s) std_s),
    std_u = sqrt((1 - u)^2 sigma^2 + u^2 c).

C is kept as its top :data:`GAUSSIAN_RANK` eigendirections ``basis`` [D, r] with variances
``var`` [r] and one variance ``var_rest`` for every other direction (the mean of the rest; a
few hundred pictures give at most N - 1 directions anyway). The sample covariance of N < D
items is singular, and a singular Gaussian's map has slopes that grow as 1 / (1 - s) towards
the data (training diverged on such a base), so every variance is shrunk towards their mean,
c <- (1 - a) c + a mean(c), a = :data:`SHRINKAGE`. Before fitting (:meth:`fit`) the Gaussian
is N(0, I), the moments of data normalised per coordinate.

:class:`GaussianBase` returns v^G + net(x, ...) with the network's output zero at the start
(the MLP's last layer is zeroed here; the DiT zero-initialises its own), so training starts at
the Gaussian's map: a run of any length samples at least as well as the Gaussian fitted to the
training data (Wang & Vastola 2024: the Gaussian part is what a network learns first), and the
network learns only what is not Gaussian. (A zero scalar gain on the network, tried first,
gave the network no gradient until the gain moved; one of seven such runs diverged, cause not
isolated.)

Time convention: t = 0 is noise, t = 1 is data. x [B, ...]; the time inputs a, b [B] are (s, t)
or (s, t - s), as the flow map's ``time_input`` says.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .mlp import MLP

Tangent = Tensor | None
GAUSSIAN_RANK = 256
SHRINKAGE = 0.1


def gaussian_ratio(s: Tensor, t: Tensor, sigma: float, var: Tensor | float = 1.0) -> Tensor:
    """r(s, t; c) of the module docstring, [B, r] for variances ``var`` [r] (or [B] for a float)."""
    s, t = (s[:, None], t[:, None]) if isinstance(var, Tensor) else (s, t)
    std_s = torch.sqrt((1 - s) ** 2 * sigma**2 + s**2 * var)
    std_t = torch.sqrt((1 - t) ** 2 * sigma**2 + t**2 * var)
    return ((sigma**2 + var) * (s + t) - 2 * sigma**2) / ((std_t + std_s) * std_s)


def gaussian_ratio_jvp(s: Tensor, t: Tensor, ds: Tangent, dt: Tangent, sigma: float,
                       var: Tensor | float = 1.0) -> tuple[Tensor, Tangent]:
    """(r(s, t; c), its derivative along (ds, dt) [B]), shaped as :func:`gaussian_ratio`;
    ``None`` is a zero tangent."""
    if ds is None and dt is None:
        return gaussian_ratio(s, t, sigma, var), None
    ds = torch.zeros_like(s) if ds is None else ds
    dt = torch.zeros_like(t) if dt is None else dt
    if isinstance(var, Tensor):
        s, t, ds, dt = s[:, None], t[:, None], ds[:, None], dt[:, None]
    std_s = torch.sqrt((1 - s) ** 2 * sigma**2 + s**2 * var)
    std_t = torch.sqrt((1 - t) ** 2 * sigma**2 + t**2 * var)
    num = (sigma**2 + var) * (s + t) - 2 * sigma**2
    den = (std_t + std_s) * std_s
    dstd_s = (s * var - (1 - s) * sigma**2) / std_s * ds
    dstd_t = (t * var - (1 - t) * sigma**2) / std_t * dt
    dnum = (sigma**2 + var) * (ds + dt)
    dden = (dstd_t + dstd_s) * std_s + (std_t + std_s) * dstd_s
    return num / den, (dnum * den - num * dden) / den**2


class GaussianBase(nn.Module):
    """v^G_{s,t}(x) + net(x, a, b, **cond) (module docstring) for items of ``shape``;
    ``time_input`` as the flow map's."""

    def __init__(self, net: nn.Module, sigma: float, shape: tuple[int, ...], time_input: str = "s_t",
                 rank: int = GAUSSIAN_RANK) -> None:
        super().__init__()
        self.net, self.sigma, self.time_input = net, float(sigma), time_input
        dim = int(torch.tensor(shape).prod())
        r = min(rank, dim)
        if isinstance(net, MLP):  # its output layer: zero, so the map starts at the Gaussian's
            nn.init.zeros_(net.body[-1].weight)
            nn.init.zeros_(net.body[-1].bias)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("basis", torch.zeros(dim, r))
        self.register_buffer("var", torch.ones(r))
        self.register_buffer("var_rest", torch.ones(()))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Set the Gaussian to the moments of items x [N, ...] (the model's scale)."""
        flat = x.reshape(x.shape[0], -1).double()
        mean = flat.mean(0)
        centred = (flat - mean) / max(flat.shape[0] - 1, 1) ** 0.5
        _, sv, vh = torch.linalg.svd(centred, full_matrices=False)
        dim = flat.shape[1]
        level = (sv**2).sum() / dim  # the mean variance over all D directions
        var = (1 - SHRINKAGE) * sv**2 + SHRINKAGE * level
        r = min(self.basis.shape[1], vh.shape[0])
        rest = (1 - SHRINKAGE) * (sv[r:] ** 2).sum() / max(dim - r, 1) + SHRINKAGE * level
        rest = rest.clamp_min(1e-6)
        self.mean.copy_(mean)
        self.basis.zero_()
        self.basis[:, :r] = vh[:r].T
        self.var.fill_(float(rest))
        self.var[:r] = var[:r].clamp_min(float(rest))
        self.var_rest.fill_(float(rest))

    def _times(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        return (a, b) if self.time_input == "s_t" else (a, a + b)

    def _gaussian(self, x: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """v^G [B, D] of flat x [B, D]."""
        y = x - s[:, None] * self.mean
        r_rest = gaussian_ratio(s, t, self.sigma, float(self.var_rest))
        r = gaussian_ratio(s, t, self.sigma, self.var) - r_rest[:, None]
        return self.mean + r_rest[:, None] * y + ((y @ self.basis) * r) @ self.basis.T

    def forward(self, x: Tensor, a: Tensor, b: Tensor, **cond: Any) -> Tensor:
        f = self.mean.dtype  # float32, or float64 for a double model (autocast's bf16 stays out)
        s, t = self._times(a.to(f), b.to(f))
        v_g = self._gaussian(x.to(f).reshape(x.shape[0], -1), s, t).reshape(x.shape)
        return (v_g + self.net(x, a, b, **cond).to(f)).to(x.dtype)

    def forward_jvp(self, x: Tensor, a: Tensor, b: Tensor, dx: Tangent, da: Tangent, db: Tangent,
                    **cond: Any) -> tuple[Tensor, Tangent]:
        """The output and its tangent along (dx, da, db), the network's from its own
        ``forward_jvp``."""
        v, dv = self.net.forward_jvp(x, a, b, dx, da, db, **cond)
        f = self.mean.dtype
        s, t = self._times(a.to(f), b.to(f))
        ds = None if da is None else da.to(f)
        if self.time_input == "s_t":
            dt = None if db is None else db.to(f)
        else:
            dt = None if da is None and db is None else (torch.zeros_like(s) if da is None else da.to(f)) + (
                torch.zeros_like(s) if db is None else db.to(f))
        flat = x.to(f).reshape(x.shape[0], -1)
        y = flat - s[:, None] * self.mean
        dy = None if dx is None else dx.to(f).reshape(x.shape[0], -1)
        if ds is not None:
            dy = (-ds[:, None] * self.mean) if dy is None else dy - ds[:, None] * self.mean
        rr, drr = gaussian_ratio_jvp(s, t, ds, dt, self.sigma, float(self.var_rest))
        rk, drk = gaussian_ratio_jvp(s, t, ds, dt, self.sigma, self.var)
        rk = rk - rr[:, None]
        proj = y @ self.basis
        v_g = self.mean + rr[:, None] * y + (proj * rk) @ self.basis.T
        out = v_g.reshape(x.shape) + v.to(f)
        parts: list[Tensor] = []
        if dy is not None:
            parts.append(rr[:, None] * dy + ((dy @ self.basis) * rk) @ self.basis.T)
        if drr is not None and drk is not None:
            parts.append(drr[:, None] * y + (proj * (drk - drr[:, None])) @ self.basis.T)
        d_out = None
        if parts or dv is not None:
            d_g = sum(parts[1:], parts[0]).reshape(x.shape) if parts else torch.zeros_like(out)
            d_out = d_g if dv is None else d_g + dv.to(f)
        return out.to(x.dtype), None if d_out is None else d_out.to(x.dtype)

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        hook = getattr(self.net, "log_weight", None)
        return hook(s, t) if hook is not None else None
