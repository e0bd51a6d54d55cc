import json

import numpy as np
import pytest
import torch

from flowmaps.audit import coverage_precision, memorisation, two_sample_auc, validity
from flowmaps.cli import main


def _gauss(n, d=4, shift=0.0, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_the_two_sample_test_tells_apart_only_different_sets():
    same = two_sample_auc(_gauss(300, seed=1), _gauss(300, seed=2))
    apart = two_sample_auc(_gauss(300, shift=1.5, seed=1), _gauss(300, seed=2))
    assert same < 0.65 and apart > 0.9


def test_coverage_and_precision_of_identical_and_distant_sets():
    real = _gauss(200, seed=3)
    assert coverage_precision(real, real.copy()) == (1.0, 1.0)
    assert coverage_precision(real, _gauss(200, shift=50.0, seed=4)) == (0.0, 0.0)
    cov, prec = coverage_precision(real, _gauss(200, seed=5))
    assert cov > 0.8 and prec > 0.8


def test_memorisation_flags_copies_and_passes_fresh_draws():
    train, held = _gauss(300, seed=6), _gauss(100, seed=7)
    ratio, copies = memorisation(train[:200] + 1e-6, held, train)
    assert ratio.value < 0.01 and copies.value == 1.0 and ratio.verdict == "failing"
    ratio, copies = memorisation(_gauss(200, seed=8), held, train)
    assert 0.7 < ratio.value < 1.4 and copies.value < 0.05 and ratio.verdict != "failing"


def test_validity_counts_values_outside_the_training_range():
    train = torch.zeros(10, 2)
    train[0] = 1.0
    gen = torch.tensor([[0.5, 0.5], [2.0, 0.5], [0.5, -1.0], [0.2, 0.2]])
    fig = validity(gen, train, train, per_column=True)
    assert fig.value == pytest.approx(2 / 8) and fig.verdict == "failing"
    gen[0, 0] = float("nan")
    assert validity(gen, train, train, per_column=True).verdict == "failing"
    images = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8).repeat(4, 1, 1, 1)
    hair = images * 1.005  # within one 8-bit level of the range: no fault in a saved image
    assert validity(hair, images, images, per_column=False).value == 0.0
    assert validity(images * 1.1, images, images, per_column=False).value > 0


def _mixed_csv(path, n=240):
    rng = np.random.default_rng(0)
    cols = [rng.normal(0.0, 30.0, n), rng.lognormal(-4.0, 1.0, n), rng.integers(0, 40, n), rng.integers(0, 2, n)]
    np.savetxt(path, np.stack(cols, 1), delimiter=",", header="level,tiny,count,flag", comments="", fmt="%.6g")
    return path


def test_a_table_run_writes_its_header_back_and_is_audited(tmp_path, capsys):
    data = _mixed_csv(tmp_path / "t.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--no-eval", "--set", "train.steps=40",
                 "--set", "train.batch_size=128", "--set", "net.width=32"]) == 0
    meta = json.loads((run / "run.json").read_text())
    assert [c["type"] for c in meta["columns"]["columns"]] == ["real", "positive", "integer", "category"]
    assert "48 of 240 rows held out" in capsys.readouterr().err
    assert main(["sample", "--run", str(run), "--steps", "1", "--num", "300", "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "level,tiny,count,flag" and len(lines) == 301
    x = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    assert (x[:, 1] >= 0).all() and (x[:, 2] == np.round(x[:, 2])).all() and set(np.unique(x[:, 3])) <= {0.0, 1.0}
    capsys.readouterr()
    assert main(["audit", "--run", str(run), "--steps", "1,2", "--num", "200"]) == 0
    out = capsys.readouterr().out
    assert "fidelity (two-sample AUC)" in out and "48 held-out, 192 training" in out
    audit = json.loads((run / "audit.json").read_text())
    names = [f["name"] for f in audit["figures"]["1"]]
    assert names == ["fidelity (two-sample AUC)", "coverage (recall)", "precision", "memorisation (distance ratio)",
                     "near copies (share)", "out of training range (share)", "column shapes (KS / TV complement)",
                     "column pair trends", "ML utility (accuracy predicting flag)"]
    assert all(f["verdict"] in ("good", "weak", "failing") and f["rule"] for f in audit["figures"]["2"])
    assert {"real", "gaussian"} <= set(audit["figures"]["1"][0]["references"])
    assert (run / "audit-marginals.png").is_file()
    held = tmp_path / "held.csv"
    _mixed_csv(held, 60)
    assert main(["audit", "--run", str(run), "--num", "100", "--heldout", str(held)]) == 0
    assert "60 held-out" in capsys.readouterr().out


def test_an_audit_needs_held_out_data(tmp_path, capsys):
    data = _mixed_csv(tmp_path / "t.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--no-eval", "--set", "train.steps=5",
                 "--set", "train.batch_size=64", "--set", "net.width=16", "--set", "data.holdout=0"]) == 0
    capsys.readouterr()
    assert main(["audit", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds nothing out" in err and "--heldout FILE" in err and err.count("\n") == 1


def test_an_image_folder_run_is_audited_in_image_features(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import flowmaps.metrics.fid as fid

    def no_weights(*a, **k):
        raise FileNotFoundError("no Inception weights here")

    monkeypatch.setattr(fid.InceptionFeatures, "load", classmethod(lambda cls, *a, **k: no_weights()))
    rng = np.random.default_rng(0)
    (tmp_path / "pics").mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "pics" / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "pics"), "--out", str(run), "--no-eval", "--set", "train.steps=3",
                 "--set", "train.batch_size=8", "--set", "data.holdout=0.25", "--set", "train.progress=false"]) == 0
    capsys.readouterr()
    assert main(["audit", "--run", str(run), "--steps", "1", "--num", "30"]) == 0
    out = capsys.readouterr().out
    assert "8 x 8 average-pooled pixels" in out and "10 held-out, 30 training" in out
    audit = json.loads((run / "audit.json").read_text())
    assert [f["name"] for f in audit["figures"]["1"]][0] == "fidelity (two-sample AUC)"
    assert "gaussian" not in audit["figures"]["1"][0]["references"]  # no baselines for images
    assert not (run / "audit-marginals.png").exists()
    with Image.open(run / "audit-nearest.png") as im:  # samples above their nearest training pictures
        assert im.size[0] > im.size[1] > 100
    assert main(["report", "--run", str(run)]) == 0
    assert "nearest training pictures" in (run / "report.html").read_text()


def test_a_run_on_some_classes_asks_for_held_out_items_of_those_classes(tmp_path, capsys):
    data = _mixed_csv(tmp_path / "t.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--set", "train.steps=5", "--set", "train.batch_size=64",
                 "--set", "net.width=16", "--set", "data.label_column=3", "--set", "data.classes=[1]",
                 "--set", "eval.steps=[1]", "--set", "train.progress=false"]) == 0
    assert not (run / "audit.json").exists()  # not audited after training: its held-out split holds every class
    capsys.readouterr()
    assert main(["audit", "--run", str(run)]) == 2
    assert "trained on classes [1]" in capsys.readouterr().err
