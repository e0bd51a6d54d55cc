"""Anomaly scores (flowmaps.anomaly): points far from the data rank above points on it."""
import pytest
import torch

from flowmaps.anomaly import ScoreSettings, anomaly_scores


@pytest.mark.parametrize("kind", ["restore", "denoise", "code"])
def test_far_points_score_higher(exact_fm, gaussian, kind):
    on = gaussian.sample_data(200, torch.Generator().manual_seed(1))
    off = gaussian.mean + 4 * gaussian.var.sqrt() * torch.sign(torch.randn(200, 3, generator=torch.Generator().manual_seed(2),
                                                                             dtype=torch.float64))
    settings = ScoreSettings(kind, [0.3, 0.6], draws=2, steps=1)
    scores = anomaly_scores(exact_fm, torch.cat([on, off]), gaussian.sigma, settings, batch_size=64, full_square=True)
    assert scores.shape == (400,) and torch.isfinite(scores).all()
    auroc = (scores[200:, None] > scores[None, :200]).double().mean()
    assert float(auroc) > 0.95


def test_scores_are_seeded(exact_fm, gaussian):
    x = gaussian.sample_data(30, torch.Generator().manual_seed(1))
    s = ScoreSettings("restore", [0.5], draws=1)
    assert torch.equal(anomaly_scores(exact_fm, x, gaussian.sigma, s, seed=3), anomaly_scores(exact_fm, x, gaussian.sigma, s, seed=3))
    assert not torch.equal(anomaly_scores(exact_fm, x, gaussian.sigma, s, seed=3), anomaly_scores(exact_fm, x, gaussian.sigma, s, seed=4))


def test_settings_are_checked(exact_fm, gaussian):
    with pytest.raises(ValueError, match="unknown score"):
        ScoreSettings("likelihood").validate()
    with pytest.raises(ValueError, match="strength must lie in"):
        ScoreSettings("restore", [1.2]).validate()
    with pytest.raises(ValueError, match="full_square"):
        anomaly_scores(exact_fm, gaussian.sample_data(4), gaussian.sigma, ScoreSettings("code"))
    assert ScoreSettings("restore", [0.3, 0.5], draws=4, steps=2).network_calls() == 16
    assert ScoreSettings("denoise", [0.3, 0.5], draws=4, steps=2).network_calls() == 8
    assert ScoreSettings("code", steps=2).network_calls() == 2
