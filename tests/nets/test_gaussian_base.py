"""The Gaussian-base network (flowmaps.nets.gaussian_base): at the start it is the exact flow map
of the Gaussian fitted to the data, its explicit tangents match torch.func's, and it trains."""
import pytest
import torch

from flowmaps.exact import GaussianProblem
from flowmaps.flow_map import FlowMap
from flowmaps.nets.gaussian_base import SHRINKAGE, GaussianBase, gaussian_ratio
from flowmaps.nets.mlp import MLP


def _based(dim, sigma, time_input, rank=256):
    return FlowMap(GaussianBase(MLP(dim=dim, width=16, depth=2, sigma=sigma), sigma, (dim,), time_input, rank),
                   time_input=time_input).double()


def _times(n):
    s = torch.rand(n, dtype=torch.float64) * 0.9
    return s, s + (1 - s) * torch.rand(n, dtype=torch.float64)


@pytest.mark.parametrize("time_input", ["s_t", "s_dt"])
@pytest.mark.parametrize("sigma", [1.0, 0.7])
def test_starts_at_the_exact_map_of_unit_gaussian(time_input, sigma):
    torch.manual_seed(0)
    fm = _based(3, sigma, time_input)
    exact = GaussianProblem(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), sigma)
    x = torch.randn(50, 3, dtype=torch.float64)
    s, t = _times(50)
    torch.testing.assert_close(fm.X(x, s, t), exact.X(x, s, t))
    torch.testing.assert_close(fm.v(x, t, t), exact.velocity(x, t))


@pytest.mark.parametrize("rank", [4, 2])
def test_fitted_to_a_correlated_gaussian_it_is_that_gaussians_map(rank):
    """Data N(m, R diag(c) R^T) in 4-D: rotated, the map is GaussianProblem's with the variances
    shrunk towards their mean (SHRINKAGE); with rank 2 the two smallest are one (equal here)."""
    torch.manual_seed(1)
    rot, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    c = torch.tensor([4.0, 2.0, 0.25, 0.25], dtype=torch.float64)
    m = torch.tensor([1.0, -0.5, 0.3, 0.0], dtype=torch.float64)
    data = m + (torch.randn(200_000, 4, dtype=torch.float64) * c.sqrt()) @ rot.T
    fm = _based(4, 0.8, "s_t", rank)
    fm.net.fit(data)
    shrunk = (1 - SHRINKAGE) * c + SHRINKAGE * c.mean()
    exact = GaussianProblem(m @ rot, shrunk, 0.8)  # in the rotated coordinates
    x = torch.randn(64, 4, dtype=torch.float64)
    s, t = _times(64)
    got = fm.X(x, s, t) @ rot
    torch.testing.assert_close(got, exact.X(x @ rot, s, t), atol=0.03, rtol=0.03)


@pytest.mark.parametrize("time_input", ["s_t", "s_dt"])
def test_explicit_tangents_match_torch_func(time_input):
    torch.manual_seed(1)
    fm = _based(4, 0.8, time_input, rank=2)
    fm.net.fit(torch.randn(100, 4, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.5, 0.2], dtype=torch.float64) + 1)
    for p in fm.parameters():  # a network that is not zero, so both parts have tangents
        torch.nn.init.normal_(p, std=0.3)
    x, dx = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    s, t = torch.rand(8, dtype=torch.float64) * 0.5, 0.5 + torch.rand(8, dtype=torch.float64) * 0.5
    ds, dt = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    for tangents in [(dx, ds, dt), (None, None, dt), (dx, None, None), (None, ds, None)]:
        v1, dv1 = fm.v_jvp(x, s, t, *tangents, backend="explicit")
        v2, dv2 = fm.v_jvp(x, s, t, *tangents, backend="func")
        torch.testing.assert_close(v1, v2)
        torch.testing.assert_close(dv1, dv2)


def test_ratio_is_the_exact_chord_slope():
    s, t = torch.tensor([0.0, 0.3, 0.5]), torch.tensor([1.0, 0.3, 0.9])
    exact = GaussianProblem(torch.zeros(2), torch.tensor([1.0, 3.0]), 0.5)
    x = torch.ones(3, 2)
    torch.testing.assert_close(gaussian_ratio(s, t, 0.5, torch.tensor([1.0, 3.0])) * x, exact.v(x, s, t))
