import torch

from flowmaps.data.toy2d import checkerboard
from flowmaps.metrics import checker_kl, checker_kl_floor


def test_floor_matches_the_paper_estimator():
    mean, std = checker_kl_floor(64000, repeats=3)
    assert 0.060 < mean < 0.072 and std < 0.01  # the spec measures ~0.066 for a perfect sampler


def test_kl_ranks_samplers():
    g = torch.Generator().manual_seed(0)
    good = checkerboard(64000, g)
    blurred = good + 0.05 * torch.randn(64000, 2, generator=g)
    uniform = torch.rand(64000, 2, generator=g) * 2 - 1
    k_good, k_blur, k_uni = checker_kl(good), checker_kl(blurred), checker_kl(uniform)
    assert k_good < k_blur < k_uni
    assert abs(k_uni - 0.693) < 0.05  # uniform over the square: KL = log 2 (plus the estimator's floor)


def test_empty_bins_are_penalised_not_infinite():
    g = torch.Generator().manual_seed(0)
    x = checkerboard(64000, g)
    half = x[x[:, 0] < 0]  # misses half of the support
    kl = checker_kl(half)
    assert torch.isfinite(torch.tensor(kl)) and kl > 1.0
