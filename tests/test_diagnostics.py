import torch

from flowmaps import loss_by_time_bin, semigroup_defect, tangent_residual


def test_exact_map_has_no_defects(exact_fm, perturbed_fm, gaussian):
    n = 128
    x = torch.randn(n, 3, dtype=torch.float64)
    s = torch.rand(n, dtype=torch.float64) * 0.3
    u = s + 0.3
    t = u + 0.3
    assert float(semigroup_defect(exact_fm, x, s, u, t).max()) < 1e-24
    assert float(semigroup_defect(perturbed_fm, x, s, u, t).mean()) > 1e-6
    assert float(tangent_residual(exact_fm, x, s, velocity=gaussian.velocity).max()) < 1e-24
    assert float(tangent_residual(perturbed_fm, x, s, velocity=gaussian.velocity).mean()) > 1e-4
    # continuity near the diagonal: O(h^2) for a smooth map
    r1 = float(tangent_residual(exact_fm, x, s, h=1e-2).mean())
    r2 = float(tangent_residual(exact_fm, x, s, h=1e-3).mean())
    assert r2 < r1 / 50


def test_loss_by_time_bin():
    times = torch.tensor([0.05, 0.15, 0.12, 0.95, 1.0])
    values = torch.tensor([1.0, 2.0, 4.0, 8.0, 10.0])
    bins = loss_by_time_bin(values, times, bins=10)
    assert bins.count.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert float(bins.mean[1]) == 3.0 and float(bins.mean[9]) == 9.0
    assert torch.isnan(bins.mean[2])
    d = bins.as_dict("t=")
    assert d["t=0.10-0.20"] == 3.0 and len(d) == 3
