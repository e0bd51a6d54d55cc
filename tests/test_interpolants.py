import pytest
import torch

from flowmaps.interpolants import LinearInterpolant, TrigInterpolant, get_interpolant, resolve_sigma, sample_base


@pytest.mark.parametrize("interp", [LinearInterpolant(), TrigInterpolant()])
def test_endpoints_and_derivative(interp):
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    zeros, ones = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    assert torch.allclose(interp.position(x0, x1, zeros), x0)  # t = 0 is noise
    assert torch.allclose(interp.position(x0, x1, ones), x1)  # t = 1 is data
    t = torch.rand(5, dtype=torch.float64) * 0.9 + 0.05
    h = 1e-6
    fd = (interp.position(x0, x1, t + h) - interp.position(x0, x1, t - h)) / (2 * h)
    sample = interp.sample(x0, x1, t)
    assert torch.allclose(sample.dx_t, fd, atol=1e-8)
    assert sample.x_t.shape == (5, 3) and sample.t.shape == (5,)


def test_images_broadcast():
    x0, x1 = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    out = LinearInterpolant().position(x0, x1, t)
    assert torch.allclose(out[1], 0.75 * x0[1] + 0.25 * x1[1])


def test_resolve_sigma():
    data = torch.randn(10000, 2) * 3.0
    assert abs(resolve_sigma("adaptive", data) - 3.0) < 0.1
    assert resolve_sigma(0.5) == 0.5
    with pytest.raises(ValueError, match="adaptive"):
        resolve_sigma("auto", data)
    with pytest.raises(ValueError, match="positive"):
        resolve_sigma(-1.0)
    with pytest.raises(ValueError, match="needs the data"):
        resolve_sigma("adaptive")
    with pytest.raises(ValueError, match="linear"):
        get_interpolant("cosine")


def test_sample_base_scale():
    g = torch.Generator().manual_seed(0)
    x = sample_base(torch.empty(20000, 2), 0.5, g)
    assert abs(float(x.std()) - 0.5) < 0.01
