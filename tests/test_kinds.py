"""Data kinds: which kind a run is, what each scores by default, and how it draws."""
import numpy as np
import pytest
import torch
from PIL import Image

from flowmaps.config import build_config, preset
from flowmaps.data.arrays import Normalization
from flowmaps.data.toy2d import gaussian_problem
from flowmaps.errors import InputError
from flowmaps.kinds import KINDS, Arrays, Checker, Images, KnownMap, Points, Sequences, data_kind, kind_for_data
from flowmaps.metrics.registry import METRICS


def _cfg(name, conditional=False, **data):
    return build_config({"data": {"name": name, "conditional": conditional, **data}})


@pytest.mark.parametrize("name,shape,conditional,kind", [
    ("checker", (2,), False, Checker), ("gaussian", (2,), False, KnownMap), ("gmm", (2,), False, KnownMap),
    ("gmm", (2,), True, Points), ("moons", (2,), False, Points), ("points", (7,), False, Points),
    ("array", (4, 8, 8), False, Arrays), ("array", (64, 2), False, Sequences), ("array", (16,), False, Arrays),
    ("digits", (1, 8, 8), False, Images), ("folder", (3, 32, 32), False, Images),
])
def test_a_run_is_of_the_first_kind_that_claims_it(name, shape, conditional, kind):
    assert type(data_kind(_cfg(name, conditional), shape)) is kind


def test_items_no_kind_claims_get_a_one_line_error():
    with pytest.raises(InputError, match=r"no data kind for items of shape \[5, 5\]"):
        data_kind(_cfg("points"), (5, 5))


@pytest.mark.parametrize("kind", KINDS)
def test_every_default_metric_serves_its_kind_and_the_quick_one_is_lower_is_better(kind):
    shape = {Images: (1, 8, 8), Arrays: (4, 8, 8), Sequences: (32, 2)}.get(kind, (2,))
    for name, conditional in (("digits", True), ("folder", False), ("checker", False), ("gaussian", False), ("array", False)):
        cfg = _cfg(name, conditional)
        if not kind.claims(cfg, shape):
            continue
        k = kind(cfg, shape)
        for m in k.default_metrics():
            assert METRICS[m].serves(k.tags), (kind.__name__, m)
        quick, n = k.quick_metric()
        assert METRICS[quick].serves(k.tags) and not METRICS[quick].higher_is_better and 0 < n <= cfg.eval.num_samples


def test_quick_metrics_by_kind():
    assert data_kind(_cfg("checker"), (2,)).quick_metric() == ("kl", 64000)
    assert data_kind(_cfg("digits"), (1, 8, 8)).quick_metric()[0] == "fd_classifier"
    assert data_kind(_cfg("folder"), (3, 16, 16)).quick_metric()[0] == "pixel_sliced_w2"
    assert data_kind(_cfg("array"), (4, 8, 8)).quick_metric()[0] == "pixel_sliced_w2"
    assert data_kind(_cfg("moons"), (2,)).quick_steps == (1, 4) and data_kind(_cfg("digits"), (1, 8, 8)).quick_steps == (1,)


def test_the_known_map_sends_noise_to_the_data_distribution():
    kind = data_kind(_cfg("gaussian"), (2,))
    exact = kind.exact_map(1.0)
    x = exact(torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0)))
    prob = gaussian_problem(1.0)
    assert torch.allclose(x.mean(0), prob.mean.double(), atol=0.02)
    assert torch.allclose(x.var(0), prob.var.double(), rtol=0.02)
    assert data_kind(_cfg("moons"), (2,)).exact_map(1.0) is None


def test_arrays_are_scored_in_their_own_scale():
    norm = Normalization([1.0, -2.0], [2.0, 0.5], 0)
    kind = data_kind(_cfg("array"), (2, 3), norm)
    x = torch.randn(5, 2, 3)
    assert torch.allclose(kind.scored(x), norm.invert(x))
    assert torch.equal(data_kind(_cfg("moons"), (2,)).scored(x), x)


def test_pictures_by_kind(tmp_path):
    images = data_kind(_cfg("digits"), (1, 8, 8))
    x = torch.rand(9, 1, 8, 8) * 2 - 1
    images.draw({"samples": x}, tmp_path / "square.png")
    images.draw({"class 0": x[:3], "class 1": x[3:6]}, tmp_path / "rows.png")
    images.draw({"class 0": x}, tmp_path / "row.png", square=False)
    sizes = {k: np.asarray(Image.open(tmp_path / f"{k}.png")).shape[:2] for k in ("square", "rows", "row")}
    assert sizes["square"][0] == sizes["square"][1]  # 3 x 3
    assert sizes["rows"][0] < sizes["rows"][1] and sizes["row"][0] < sizes["row"][1]
    data_kind(_cfg("moons"), (2,)).draw({"samples": torch.randn(100, 2)}, tmp_path / "points.png", steps=4)
    assert (tmp_path / "points.png").is_file()
    with pytest.raises(InputError, match=r"cannot draw items of shape \[3\] as a PNG"):
        data_kind(_cfg("points"), (3,)).draw({"samples": torch.randn(10, 3)}, tmp_path / "no.png")
    assert data_kind(_cfg("checker"), (2,)).limit(None) == 1.2 and data_kind(_cfg("moons"), (2,)).limit(None) is None


def test_autoconfig_takes_the_network_from_the_kind():
    assert kind_for_data("array", (4, 32, 32)).network(cpu=True)[0]["kind"] == "dit"
    assert kind_for_data("array", (16,)).network(cpu=True)[0]["kind"] == "mlp"
    assert kind_for_data("points", (40,)).network(cpu=True)[0]["width"] == 768
    net, why = kind_for_data("folder", (3, 32, 32)).network(cpu=False)
    assert net["kind"] == "edm2" and net["model_channels"] == 64 and "GPU" in why


def test_checker_preset_is_scored_by_kl_first():
    cfg = build_config(preset("checker-cpu"))
    assert data_kind(cfg, (2,)).default_metrics()[0] == "kl"


def test_sequences_are_drawn_as_lines_and_other_arrays_need_a_decoder(tmp_path):
    seq = data_kind(_cfg("array"), (32, 3))
    seq.draw({"samples": torch.randn(4, 32, 3), "more": torch.randn(4, 32, 3)}, tmp_path / "lines.png")
    assert (tmp_path / "lines.png").is_file() and not list(tmp_path.glob("*.tmp*"))
    assert seq.default_metrics() == ["fd_array", "sliced_w2_array"] and seq.network(cpu=True)[0]["kind"] == "dit"
    with pytest.raises(InputError, match=r"cannot draw arrays of shape \[4, 8, 8\] without a decoder"):
        data_kind(_cfg("array"), (4, 8, 8)).draw({"samples": torch.randn(2, 4, 8, 8)}, tmp_path / "no.png")
