"""Restoration and editing (flowmaps.edit) against the exact Gaussian flow map."""
import pytest
import torch

from flowmaps.edit import denoise, edit, inpaint, noise_level_time, posterior_mean, start_time
from flowmaps.sampling import apply_batched, sample_map


def test_strength_one_is_sampling(exact_fm, gaussian):
    x = gaussian.sample_data(64, torch.Generator().manual_seed(1))
    out = edit(exact_fm, x, 1.0, 3, gaussian.sigma, torch.Generator().manual_seed(5))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float32).double()
    assert torch.allclose(out, sample_map(exact_fm, gaussian.sigma * eps, 3), atol=1e-10)


def test_small_strength_keeps_the_input(exact_fm, gaussian):
    x = gaussian.sample_data(2000, torch.Generator().manual_seed(1))
    out = edit(exact_fm, x, 0.01, 1, gaussian.sigma, torch.Generator().manual_seed(2))
    rel = ((out - x).pow(2).mean(0) / gaussian.var).sqrt()
    assert float(rel.max()) < 0.05
    far = edit(exact_fm, x, 0.5, 1, gaussian.sigma, torch.Generator().manual_seed(2))
    assert float(((far - x).pow(2).mean(0) / gaussian.var).sqrt().min()) > 0.2  # a real edit moves it


def test_edit_keeps_the_data_distribution(exact_fm, gaussian):
    x = gaussian.sample_data(20000, torch.Generator().manual_seed(1))
    out = edit(exact_fm, x, 0.6, 2, gaussian.sigma, torch.Generator().manual_seed(2))
    assert torch.allclose(out.mean(0), gaussian.mean, atol=0.05)
    assert torch.allclose(out.var(0), gaussian.var, rtol=0.05)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5])
def test_strength_outside_the_range(strength):
    with pytest.raises(ValueError, match="strength must lie in"):
        start_time(strength)


def test_posterior_mean_is_the_gaussian_posterior(exact_fm, gaussian):
    g = torch.Generator().manual_seed(3)
    x = gaussian.sample_data(500, g)
    s = 0.3
    y = x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
    expected = gaussian.mean + gaussian.var / (gaussian.var + s**2) * (y - gaussian.mean)
    assert torch.allclose(posterior_mean(exact_fm, y, s, gaussian.sigma), expected, atol=1e-8)


def test_denoise_starts_on_the_interpolant(exact_fm, gaussian):
    s = 0.4
    t = noise_level_time(gaussian.sigma, s)
    assert t * s == pytest.approx((1 - t) * gaussian.sigma)
    g = torch.Generator().manual_seed(3)
    x = gaussian.sample_data(20000, g)
    y = x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
    out = denoise(exact_fm, y, s, 1, gaussian.sigma)
    assert torch.allclose(out.var(0), gaussian.var, rtol=0.05)  # a sample, not the blurred mean
    mean = posterior_mean(exact_fm, y, s, gaussian.sigma)
    assert bool(((out - x).pow(2).mean(0) > (mean - x).pow(2).mean(0)).all())  # the mean wins on squared error
    assert bool(((out - x).pow(2).mean(0) < (y - x).pow(2).mean(0)).all())  # both beat the noisy input


@pytest.mark.parametrize("scheme", ["jump", "replace"])
def test_inpaint_keeps_the_known_part(exact_fm, gaussian, scheme):
    x = gaussian.sample_data(20000, torch.Generator().manual_seed(4))
    known = torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype)
    out = inpaint(exact_fm, x, known, 3, gaussian.sigma, generator=torch.Generator().manual_seed(5), scheme=scheme)
    assert torch.equal(out[:, 0], x[:, 0]) and torch.equal(out[:, 2], x[:, 2])
    assert abs(float(out[:, 1].mean()) - float(gaussian.mean[1])) < 0.05  # independent dims: the marginal
    assert abs(float(out[:, 1].var()) / float(gaussian.var[1]) - 1) < 0.08


def test_apply_batched_matches_one_call(exact_fm, gaussian):
    x = gaussian.sample_data(50, torch.Generator().manual_seed(6))
    full = sample_map(exact_fm, x, 2).float()
    assert torch.allclose(apply_batched(exact_fm, lambda xb: sample_map(exact_fm, xb, 2), x, 7), full)
    m = torch.ones_like(x)
    assert torch.allclose(apply_batched(exact_fm, lambda xb, mb: mb * xb, x, 7, aux=m), x.float())
