import json

import numpy as np
import pytest
import torch

from flowmaps.data.columns import TableTransform, detect_columns, detect_type, parse_column_spec
from flowmaps.data.source import build_source


def _table(n=400, seed=0):
    """Mixed scales: a real column, a skewed non-negative one (tiny scale), a count, a binary flag."""
    rng = np.random.default_rng(seed)
    real = rng.normal(50.0, 20.0, n)
    skewed = rng.lognormal(-4.0, 1.0, n)  # about 0.02, right-skewed
    count = rng.poisson(3.0, n) + rng.integers(0, 30, n)  # more than 10 distinct integers
    flag = rng.integers(0, 2, n)
    return np.stack([real, skewed, count, flag], 1).astype(np.float64), ["real", "skewed", "count", "flag"]


def test_types_are_detected_from_the_values():
    x, names = _table()
    assert [detect_type(x[:, j]) for j in range(4)] == ["real", "positive", "integer", "category"]
    t = detect_columns(x, names)
    assert [c.type for c in t.columns] == ["real", "positive", "integer", "category"]
    assert t.columns[1].log_offset > 0 and t.columns[0].log_offset == 0  # the skewed column is logged
    assert t.columns[3].values == [0.0, 1.0]
    assert "1 category" in t.describe() and "log-transformed" in t.describe()


def test_every_column_is_standardised_and_comes_back_exactly():
    x, names = _table()
    t = detect_columns(x, names)
    z = t.apply(torch.tensor(x))
    assert torch.allclose(z.mean(0), torch.zeros(4, dtype=z.dtype), atol=1e-9)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(4, dtype=z.dtype), atol=1e-9)
    back = t.invert(z)
    assert torch.allclose(back, torch.tensor(x), rtol=1e-9, atol=1e-12)


def test_outputs_stay_in_range_rounded_and_snapped():
    x, names = _table()
    t = detect_columns(x, names)
    y = t.invert(5 * torch.randn(5000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert bool((y[:, 1] >= 0).all()) and bool((y[:, 2] >= 0).all())  # non-negative columns
    assert bool((y[:, 2] == y[:, 2].round()).all())  # the count is an integer
    assert set(y[:, 3].tolist()) <= {0.0, 1.0}  # the flag takes its seen values
    assert bool((y[:, 0] < 0).any())  # a real column is not clipped at 0 ...
    assert float(y[:, 0].min()) == x[:, 0].min() and float(y[:, 0].max()) == x[:, 0].max()  # ... but to the training range


def test_the_log_makes_a_skewed_column_more_gaussian():
    x, names = _table()
    z = detect_columns(x, names).apply(torch.tensor(x))[:, 1].numpy()
    skew = lambda v: float(((v - v.mean()) ** 3).mean() / v.std() ** 3)
    assert abs(skew(z)) < 0.5 < skew(x[:, 1])


def test_a_spec_overrides_some_columns_and_bad_specs_name_the_fix():
    x, names = _table()
    t = detect_columns(x, names, "flag:real,2:real")
    assert [c.type for c in t.columns] == ["real", "positive", "real", "real"]
    assert parse_column_spec("auto", names) == {}
    with pytest.raises(ValueError, match="unknown type 'colour'"):
        parse_column_spec("flag:colour", names)
    with pytest.raises(ValueError, match="no column 'age'; the columns are real, skewed, count, flag"):
        parse_column_spec("age:integer", names)
    with pytest.raises(ValueError, match="set positive but holds negative values"):
        detect_columns(x, names, "real:positive")


def test_the_transform_survives_json():
    x, names = _table()
    t = detect_columns(x, names)
    again = TableTransform.from_dict(json.loads(json.dumps(t.as_dict())))
    z = torch.randn(50, 4, dtype=torch.float64)
    assert torch.equal(again.invert(z), t.invert(z)) and again.names == names


def test_a_point_file_is_fitted_on_its_training_rows_for_both_splits(tmp_path):
    x, names = _table()
    np.savetxt(tmp_path / "t.csv", x, delimiter=",", header=",".join(names), comments="")
    train = build_source("points", str(tmp_path / "t.csv"), holdout=0.25, columns="auto")
    held = build_source("points", str(tmp_path / "t.csv"), holdout=0.25, split="heldout", columns="auto")
    assert train.size == 300 and held.size == 100
    assert train.columns.as_dict() == held.columns.as_dict()  # the held-out rows use the training rows' fit
    assert torch.allclose(train.points.mean(0), torch.zeros(4), atol=1e-4)
    raw = build_source("points", str(tmp_path / "t.csv"))  # columns="none": the raw values
    assert raw.columns is None and float(raw.points[:, 0].mean()) > 10
