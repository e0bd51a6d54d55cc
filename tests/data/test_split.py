"""Held-out splits (data.holdout) and class subsets (data.classes)."""
import numpy as np
import pytest

from flowmaps.config import ConfigError, build_config
from flowmaps.data.source import build_source, split_indices
from flowmaps.train.builders import build_data


def test_split_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, held = split_indices(labels, 0.3)
    assert not set(train) & set(held) and len(train) + len(held) == 60
    assert np.bincount(labels[held]).tolist() == [3, 6, 9]
    again = split_indices(labels, 0.3)
    assert np.array_equal(train, again[0]) and np.array_equal(held, again[1])
    with pytest.raises(ValueError, match="holdout"):
        split_indices(labels, 1.0)


def test_digits_one_class_training_and_all_class_heldout():
    cfg = build_config({"data": {"name": "digits", "holdout": 0.5, "classes": [3]}})
    train, held = build_data(cfg), build_data(cfg, "heldout")
    assert train.size == 91 and held.size == 898 and train.num_classes == 10
    x, y = train.batch(0, 0, 0, 1, 40)
    assert x.shape == (40, 1, 8, 8) and set(y.tolist()) == {3}
    assert set(held.images.all_labels().tolist()) == set(range(10))
    train_all = build_data(build_config({"data": {"name": "digits", "holdout": 0.5}}))
    held_x = held.images.batch(np.arange(held.size))[0]
    seen = train_all.images.batch(np.arange(train_all.size))[0]
    assert train_all.size + held.size == 1797
    assert not (held_x[:50, None] == seen[None]).flatten(2).all(2).any()  # nothing held out is trained on
    assert len(train.full_images) == 1797  # the project classifier still sees every class


def test_points_with_labels(tmp_path):
    arr = np.concatenate([np.random.default_rng(0).standard_normal((40, 2)), np.repeat([[0], [1]], 20, 0)], 1)
    np.save(tmp_path / "p.npy", arr)
    src = build_source("points", str(tmp_path / "p.npy"), label_column=-1, holdout=0.25, classes=[1])
    assert src.size == 15 and src.num_classes == 2 and set(src.labels.tolist()) == {1}
    assert build_source("points", str(tmp_path / "p.npy"), label_column=-1, holdout=0.25, split="heldout").size == 10
    with pytest.raises(ValueError, match="data.classes needs labels"):
        build_source("points", str(tmp_path / "p.npy"), classes=[1])
    with pytest.raises(ValueError, match="classes \\[5\\] do not occur"):
        build_source("points", str(tmp_path / "p.npy"), label_column=-1, classes=[5])


def test_bad_settings():
    with pytest.raises(ValueError, match="finite data sets"):
        build_source("checker", holdout=0.2)
    with pytest.raises(ValueError, match="holds nothing out"):
        build_source("digits", split="heldout")
    with pytest.raises(ConfigError, match="data.holdout"):
        build_config({"data": {"name": "digits", "holdout": 1.5}})
    with pytest.raises(ConfigError, match="data.classes"):
        build_config({"data": {"name": "digits", "classes": []}})
