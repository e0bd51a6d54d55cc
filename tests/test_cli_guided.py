"""Class-conditional and guided runs through the CLI: train, evaluate at several guidance scales,
sample one row per class, and one-line errors for requests a run cannot serve."""
import json

import numpy as np
import pytest

from flowmaps.cli import main

TINY = ["--set", "net.width=32", "--set", "net.depth=2", "--set", "train.steps=12", "--set", "train.batch_size=64",
        "--set", "train.progress=false", "--set", "train.ckpt_every=6", "--set", "eval.num_samples=600",
        "--set", "train.log_every=6", "--set", "eval.steps=[1,2]"]


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("guided") / "run"
    assert main(["train", "--preset", "gaussian", "--out", str(out), "--set", "data.name=gmm", "--set", "data.conditional=true",
                 "--set", "loss.guidance_max=3", "--set", "eval.guidance=[2]", *TINY]) == 0
    return out


def test_guided_run_evaluates_each_scale(guided_run):
    result = json.loads((guided_run / "eval.json").read_text())
    assert set(result["metrics"]) == {"map", "map, guidance 2"}
    assert result["metrics"]["map"]["1"]["nfe"] == 1.0 and "sliced_w2" in result["metrics"]["map, guidance 2"]["2"]
    meta = json.loads((guided_run / "run.json").read_text())
    assert meta["num_classes"] == 3


def test_sample_classes_with_guidance(guided_run, tmp_path, capsys):
    assert main(["sample", "--run", str(guided_run), "--steps", "1", "--num", "5", "--class", "all", "--guidance", "2",
                 "--out", str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "x.npy").shape == (15, 2)
    assert "classes 0,1,2, guidance 2" in capsys.readouterr().out
    assert main(["sample", "--run", str(guided_run), "--steps", "2", "--num", "5", "--class", "0,2", "--guidance", "1.5",
                 "--solver", "heun", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("extra,message", [
    (["--guidance", "2"], "--guidance needs --class"),
    (["--class", "7"], "classes 0..2"),
    (["--class", "x"], "expected a class number"),
])
def test_bad_class_requests(guided_run, tmp_path, capsys, extra, message):
    assert main(["sample", "--run", str(guided_run), "--steps", "1", "--out", str(tmp_path / "x.npy"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "x.npy").exists()


def test_unguided_conditional_run_refuses_map_guidance_but_ode_cfg_works(tmp_path, capsys):
    out = tmp_path / "cond"
    assert main(["train", "--preset", "gaussian", "--out", str(out), "--set", "data.name=moons", "--set", "data.conditional=true",
                 *TINY, "--no-eval"]) == 0
    assert main(["sample", "--run", str(out), "--steps", "1", "--class", "1", "--guidance", "2",
                 "--out", str(tmp_path / "x.npy")]) == 2
    assert "without the guidance input" in capsys.readouterr().err
    assert main(["sample", "--run", str(out), "--steps", "2", "--class", "1", "--guidance", "2", "--solver", "euler",
                 "--out", str(tmp_path / "x.npy")]) == 0
    assert main(["sample", "--run", str(out), "--steps", "1", "--out", str(tmp_path / "y.npy")]) == 2  # needs --class
    assert "this run is class-conditional: pass --class" in capsys.readouterr().err


@pytest.mark.parametrize("sets,message", [
    (["--set", "loss.guidance_max=2"], "data.conditional=true"),
    (["--set", "data.conditional=true"], "has none"),
    (["--set", "data.name=gmm", "--set", "data.conditional=true", "--set", "loss.guidance_max=2",
      "--set", "data.label_dropout=0"], "label_dropout"),
])
def test_conditioning_config_errors(tmp_path, capsys, sets, message):
    assert main(["train", "--preset", "gaussian", "--out", str(tmp_path / "r"), *sets, *TINY]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("method", ["lmd", "pfmm"])
def test_distillation_from_a_conditional_teacher(guided_run, tmp_path, method, capsys):
    short = ["--set", "train.steps=2", "--set", "train.batch_size=32", "--set", "train.progress=false",
             "--set", "net.width=32", "--set", "net.depth=2", "--no-eval"]
    base = ["train", "--preset", "gaussian", "--set", "data.name=gmm", "--set", f"method={method}",
            "--set", f"teacher.run={guided_run}", *short]
    # a conditional student: the (guided) teacher sees its labels, at alpha = 1
    assert main([*base, "--out", str(tmp_path / "c"), "--set", "data.conditional=true"]) == 0
    # an unconditional student: the teacher's null label
    assert main([*base, "--out", str(tmp_path / "u")]) == 0
    # a conditional student of an unconditional teacher is refused
    plain = tmp_path / "plain"
    assert main(["train", "--preset", "gaussian", "--set", "data.name=gmm", *short, "--out", str(plain)]) == 0
    capsys.readouterr()
    assert main(["train", "--preset", "gaussian", "--set", "data.name=gmm", "--set", f"method={method}",
                 "--set", f"teacher.run={plain}", "--set", "data.conditional=true", *short, "--out", str(tmp_path / "bad")]) == 2
    assert "needs a teacher trained on the same 3 classes" in capsys.readouterr().err
