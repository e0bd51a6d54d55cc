"""Every residual is ~0 pointwise at the exact Gaussian flow map and clearly positive off it."""
import pytest
import torch

from flowmaps import FlowMap
from flowmaps.exact import ExactGaussianNet, GaussianMixtureProblem
from flowmaps.losses import (
    emd_residual,
    esd_residual,
    flow_matching_residual,
    lmd_residual,
    lsd_residual,
    lsd_semigradient_residual,
    pfmm_residual,
    psd_residual,
    squared_norm,
)

from ..helpers import path_batch

N = 256


def _residuals(fm, problem, full_square=False, backend="func"):
    x_s, _, s, t, _, _ = path_batch(problem, N, full_square=full_square)
    gamma = torch.rand(N, dtype=torch.float64)
    return {
        "lsd": lsd_residual(fm, x_s, s, t, backend),
        "lsd-semigrad": lsd_semigradient_residual(fm, x_s, s, t, backend),
        "esd-full": esd_residual(fm, x_s, s, t, "full", backend),
        "esd-convex": esd_residual(fm, x_s, s, t, "convex", backend),
        "esd-none": esd_residual(fm, x_s, s, t, "none", backend),
        "esd-semigradient": esd_residual(fm, x_s, s, t, "semigradient", backend),
        "psd-u": psd_residual(fm, x_s, s, t, gamma),
        "psd-m": psd_residual(fm, x_s, s, t, 0.5),
        "lmd": lmd_residual(fm, problem.velocity, x_s, s, t, backend),
        "emd": emd_residual(fm, problem.velocity, x_s, s, t, backend),
        "pfmm": pfmm_residual(fm, problem.X, x_s, s, t, gamma),
    }


@pytest.mark.parametrize("full_square", [False, True])
def test_residuals_vanish_at_exact_map(exact_fm, gaussian, full_square):
    for name, r in _residuals(exact_fm, gaussian, full_square).items():
        assert r.shape == (N, 3)
        assert float(squared_norm(r.detach()).max()) < 1e-20, name


@pytest.mark.parametrize("backend", ["forward_ad", "fd"])
def test_residuals_vanish_with_every_backend(exact_fm, gaussian, backend):
    tol = 1e-14 if backend == "fd" else 1e-20
    for name, r in _residuals(exact_fm, gaussian, backend=backend).items():
        assert float(squared_norm(r.detach()).max()) < tol, (name, backend)


def test_residuals_positive_off_the_exact_map(perturbed_fm, gaussian):
    for name, r in _residuals(perturbed_fm, gaussian).items():
        mean = float(squared_norm(r.detach()).mean())
        assert mean > 1e-5, name


def test_residuals_grow_with_the_perturbation(gaussian):
    """The losses are minimised at the exact map: larger perturbations give larger residuals."""
    means = []
    for eps in (0.0, 0.02, 0.08):
        fm = FlowMap(ExactGaussianNet(gaussian, perturb=eps))
        means.append({k: float(squared_norm(r.detach()).mean()) for k, r in _residuals(fm, gaussian).items()})
    for key in means[0]:
        assert means[0][key] < means[1][key] < means[2][key], key


@torch.no_grad()
def test_flow_matching_at_exact_velocity_is_the_conditional_variance(exact_fm, gaussian):
    g = torch.Generator().manual_seed(3)
    n = 200_000
    for tval in (0.1, 0.5, 0.9):
        x1 = gaussian.sample_data(n, g)
        x0 = gaussian.sigma * torch.randn(x1.shape, generator=g, dtype=x1.dtype)
        t = torch.full((n,), tval, dtype=torch.float64)
        x_t = (1 - tval) * x0 + tval * x1
        loss = float(squared_norm(flow_matching_residual(exact_fm, x_t, t, x1 - x0)).mean())
        expected = float(gaussian.conditional_variance(t[:1]))
        assert abs(loss - expected) < 0.02 * expected, (tval, loss, expected)
        perturbed = FlowMap(ExactGaussianNet(gaussian, perturb=0.3))
        worse = float(squared_norm(flow_matching_residual(perturbed, x_t, t, x1 - x0)).mean())
        assert worse > loss


def test_mixture_velocity_and_map():
    """The mixture's closed-form velocity matches the Gaussian one for K = 1, and its ODE map
    satisfies the semigroup property."""
    from flowmaps.exact import GaussianProblem

    m, c = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.3, 0.1], dtype=torch.float64)
    single = GaussianMixtureProblem(torch.ones(1, dtype=torch.float64), m[None], c[None], 0.7)
    gauss = GaussianProblem(m, c, 0.7)
    x, t = torch.randn(64, 2, dtype=torch.float64), torch.rand(64, dtype=torch.float64)
    assert torch.allclose(single.velocity(x, t), gauss.velocity(x, t), atol=1e-12)
    s = torch.zeros(64, dtype=torch.float64)
    assert torch.allclose(single.X(x, s, t + 0 * s + 1 - t), gauss.X(x, s, torch.ones_like(s)), atol=1e-8)

    mix = GaussianMixtureProblem(
        torch.tensor([0.3, 0.7], dtype=torch.float64),
        torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64),
        torch.tensor([[0.05, 0.05], [0.1, 0.02]], dtype=torch.float64),
        0.8,
    )
    u = torch.full((64,), 0.4, dtype=torch.float64)
    one = torch.ones(64, dtype=torch.float64)
    direct = mix.X(x, s, one)
    composed = mix.X(mix.X(x, s, u), u, one)
    assert torch.allclose(direct, composed, atol=1e-6)
