"""The metric registry: entries, the kinds they serve, their one-line errors and floors."""
import pytest
import torch

from flowmaps.config import build_config
from flowmaps.errors import ConfigError
from flowmaps.kinds import Checker, Images, KnownMap, Points
from flowmaps.metrics.registry import METRICS, Scoring, metric_for


def test_every_entry_is_filed_under_its_name_and_serves_some_kind():
    for name, m in METRICS.items():
        assert m.name == name and m.kinds and m.needs
        assert not (m.quick and m.higher_is_better)  # EMA selection takes the lowest


def test_an_unknown_metric_lists_those_the_data_kind_has():
    with pytest.raises(ConfigError, match=r"unknown metric 'fud' for moons; choose from w2, sliced_w2, energy"):
        metric_for("fud", Points.tags, "moons")


def test_a_metric_for_another_kind_says_what_it_needs():
    with pytest.raises(ConfigError, match=r"metric kl needs the checkerboard \(data.name=checker\), not moons"):
        metric_for("kl", Points.tags, "moons")
    with pytest.raises(ConfigError, match="metric w2 needs low-dimensional data, not digits"):
        metric_for("w2", Images.tags, "digits")
    assert metric_for("sliced_w2", Checker.tags, "checker").name == "sliced_w2"
    assert metric_for("map_mse", KnownMap.tags, "gaussian").name == "map_mse"


def test_map_mse_is_zero_at_the_exact_map_and_grows_off_it():
    exact = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    s = Scoring(build_config({}), exact=exact)
    assert METRICS["map_mse"].score(exact, s).values == {"map_mse": 0.0, "map_rel_err": 0.0}
    off = METRICS["map_mse"].score(exact + 0.1, s).values
    assert off["map_mse"] == pytest.approx(0.02, rel=1e-6) and off["map_rel_err"] > 0


def test_distances_need_a_reference_and_their_floor_is_fresh_data_against_it():
    cfg = build_config({})
    ref = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ConfigError, match="needs the training data"):
        METRICS["sliced_w2"].score(ref, Scoring(cfg))
    draws = []
    s = Scoring(cfg, reference=ref, fresh=lambda n: draws.append(n) or ref[:n])
    assert METRICS["sliced_w2"].floor(s, 2000) == pytest.approx(0.0, abs=1e-12)
    assert METRICS["energy"].floor(s, 2000) == pytest.approx(0.0, abs=1e-9)
    assert draws == [2000]  # one fresh draw, shared by the floors
    assert METRICS["sliced_w2"].score(ref + 1.0, s).values["sliced_w2"] > 0.5


def test_class_accuracy_needs_labels():
    with pytest.raises(ConfigError, match="class-conditional run"):
        METRICS["class_accuracy"].score(torch.zeros(2, 1, 8, 8), Scoring(build_config({})))


def test_kl_floor_is_the_perfect_samplers():
    floor = METRICS["kl"].floor(Scoring(build_config({})), 64000)
    assert 0.05 < floor < 0.08
