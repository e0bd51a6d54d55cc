import numpy as np
import pytest
import torch

from flowmaps.metrics import energy_distance, map_mse, sliced_wasserstein2, wasserstein2
from flowmaps.metrics.fid import feature_stats, frechet_distance, kernel_inception_distance


def test_w2_of_a_shift_is_the_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1500, 2, generator=g)
    assert wasserstein2(x, x + torch.tensor([0.5, 0.0]), n=1500) == pytest.approx(0.5, abs=1e-6)
    assert sliced_wasserstein2(x, x) == pytest.approx(0.0, abs=1e-12)
    y = torch.randn(4000, 2, generator=g)
    assert energy_distance(x, y) < 0.01 < energy_distance(x, y + 1.0)
    assert map_mse(x, x + 1.0) == pytest.approx(2.0)


def test_frechet_distance_closed_form_gaussians():
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    c1, c2 = np.diag([1.0, 4.0, 0.25]), np.diag([4.0, 1.0, 1.0])
    exact = np.sum((m1 - m2) ** 2) + np.sum(np.diag(c1) + np.diag(c2) - 2 * np.sqrt(np.diag(c1) * np.diag(c2)))
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(exact, rel=1e-10)
    # a rotated full-covariance case: FD is rotation invariant
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    assert frechet_distance(q @ m1, q @ c1 @ q.T, q @ m2, q @ c2 @ q.T) == pytest.approx(exact, rel=1e-8)
    # from samples
    rng = np.random.default_rng(1)
    a = rng.multivariate_normal(m1, c1, 200_000)
    b = rng.multivariate_normal(m2, c2, 200_000)
    assert frechet_distance(*feature_stats(a), *feature_stats(b)) == pytest.approx(exact, rel=0.02)


def test_kid_is_unbiased():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    diff, _ = kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.02 and diff > 0.1


def test_frechet_distance_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 1.0
    fd = frechet_distance(*feature_stats(a), *feature_stats(b))  # singular covariances: no warning, finite
    assert np.isfinite(fd) and fd > 64 * 0.5


@pytest.mark.parametrize("n, d", [(400, 32), (60, 128)])  # full rank, and singular (fewer samples than dimensions)
def test_frechet_distance_matches_the_reference_sqrtm(n, d):
    import scipy.linalg

    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, d))
    b = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3 + 0.2
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2 + 1e-12 * np.eye(d)))  # the reference implementation's trace
    reference = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-6)
