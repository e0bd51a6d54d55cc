import pytest
import torch

from flowmaps import FlowMap, sample, sample_map, sample_ode, uniform_grid
from flowmaps.sampling import as_grid

from .helpers import TinyMLP


def test_exact_map_one_step_equals_many_steps(exact_fm, gaussian):
    x0 = gaussian.sigma * torch.randn(500, 3, dtype=torch.float64)
    one = sample_map(exact_fm, x0, 1)
    sixteen = sample_map(exact_fm, x0, 16)
    z, o = torch.zeros(500, dtype=torch.float64), torch.ones(500, dtype=torch.float64)
    assert torch.allclose(one, gaussian.X(x0, z, o), atol=1e-12)
    assert torch.allclose(one, sixteen, atol=1e-12)
    custom = sample_map(exact_fm, x0, [0.0, 0.1, 0.7, 1.0])
    assert torch.allclose(custom, one, atol=1e-12)


def test_backward_grid_returns_to_noise(exact_fm, gaussian):
    x0 = gaussian.sigma * torch.randn(100, 3, dtype=torch.float64)
    x1 = sample_map(exact_fm, x0, 4)
    back = sample_map(exact_fm, x1, torch.linspace(1, 0, 5, dtype=torch.float64))
    assert torch.allclose(back, x0, atol=1e-10)


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_ode_solvers_converge_at_their_order(exact_fm, gaussian, solver, order):
    x0 = gaussian.sigma * torch.randn(200, 3, dtype=torch.float64)
    z, o = torch.zeros(200, dtype=torch.float64), torch.ones(200, dtype=torch.float64)
    exact = gaussian.X(x0, z, o)
    e1 = float((sample_ode(exact_fm, x0, 8, solver) - exact).abs().max())
    e2 = float((sample_ode(exact_fm, x0, 16, solver) - exact).abs().max())
    rate = torch.log2(torch.tensor(e1 / e2))
    assert abs(float(rate) - order) < 0.5, (solver, e1, e2)


def test_sample_dispatch_and_grid_validation():
    fm = FlowMap(TinyMLP())
    x = torch.randn(5, 2)
    assert sample(fm, x, 2, "map").shape == (5, 2)
    assert sample(fm, x, 2, "heun").shape == (5, 2)
    assert torch.allclose(uniform_grid(4), torch.tensor([0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="monotone|increasing"):
        as_grid([0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        as_grid([0.0, 1.5])
    with pytest.raises(ValueError, match="solver"):
        sample_ode(fm, x, 2, "rk45")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        uniform_grid(0)
