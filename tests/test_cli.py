import json

import numpy as np
import pytest
import torch

from flowmaps.cli import main

TINY = ["--set", "net.width=32", "--set", "net.depth=2", "--set", "train.steps=12", "--set", "train.batch_size=64",
        "--set", "train.progress=false", "--set", "train.ckpt_every=6", "--set", "eval.num_samples=2000",
        "--set", "train.log_every=6"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--preset", "gaussian", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_complete_run(run_dir):
    for name in ("config.yaml", "run.json", "metrics.jsonl", "eval.json", "samples-final.png", "training.png"):
        assert (run_dir / name).is_file(), name
    result = json.loads((run_dir / "eval.json").read_text())
    assert set(result["metrics"]["map"]) == {"1", "2", "4", "8", "16"}
    meta = json.loads((run_dir / "run.json").read_text())
    assert result["provenance"]["ema"] == meta["ema_selected"] and result["provenance"]["step"] == 12
    sel = result["ema_selection"]
    assert "raw" in sel["scores"] and sel["scores"][sel["chosen"]] == min(sel["scores"].values())
    assert "<img" in (run_dir / "report.html").read_text()


def test_resume_continues(run_dir, tmp_path):
    assert main(["train", "--resume", "--out", str(run_dir), "--set", "train.steps=18", "--no-eval"]) == 0
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 18


def test_sample_npy_png_and_noise(run_dir, tmp_path, capsys):
    assert main(["sample", "--run", str(run_dir), "--steps", "2", "--num", "10", "--out", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (10, 2) and np.isfinite(x).all()
    noise = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    np.save(tmp_path / "z.npy", noise)
    assert main(["sample", "--run", str(run_dir), "--steps", "1", "--noise", str(tmp_path / "z.npy"),
                 "--out", str(tmp_path / "a.npy")]) == 0
    assert main(["sample", "--run", str(run_dir), "--steps", "1", "--noise", str(tmp_path / "z.npy"),
                 "--out", str(tmp_path / "b.npy"), "--solver", "heun", "--ema", "0"]) == 0
    assert np.load(tmp_path / "a.npy").shape == (5, 2)
    assert not np.allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert main(["sample", "--run", str(run_dir), "--steps", "4", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_eval_prints_table(run_dir, capsys):
    assert main(["eval", "--run", str(run_dir), "--steps", "1,2", "--solver", "map,euler", "--num", "1000"]) == 0
    out = capsys.readouterr().out
    assert "| map | 1 |" in out and "| euler | 2 |" in out
    result = json.loads((run_dir / "eval.json").read_text())
    assert set(result["metrics"]) == {"map", "euler"}


def test_info(capsys):
    assert main(["info"]) == 0
    assert "checker-cpu" in capsys.readouterr().out
    assert main(["info", "--preset", "cifar10"]) == 0
    assert "network parameters: 54,673,314" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["sample", "--run", "/nonexistent", "--steps", "1", "--out", "x.npy"], "not a flowmaps run folder"),
    (["train", "--preset", "nope"], "unknown preset"),
    (["train", "--preset", "gaussian", "--set", "train.stepz=3"], "unknown config key 'train.stepz'"),
    (["train", "--preset", "gaussian", "--set", "data.name=points"], "data.path"),
    (["train", "--preset", "gaussian", "--set", "data.name=mnist", "--set", "data.path=/nonexistent"], "train-images-idx3-ubyte"),
    (["train", "--data", "/nonexistent/cloud.npy"], "does not exist"),
    (["train", "--preset", "gaussian", "--minutes", "0"], "--minutes must be positive"),
    (["sample", "--run", "/nonexistent", "--steps", "1", "--out", "x.npy", "--ema", "sigma_rel=9"], "not a flowmaps run folder"),
])
def test_errors_are_one_line_with_status_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("flowmaps: error:") and message in err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_bad_noise_shape(run_dir, tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.zeros((4, 3), dtype=np.float32))
    assert main(["sample", "--run", str(run_dir), "--steps", "1", "--noise", str(tmp_path / "z.npy"),
                 "--out", str(tmp_path / "o.npy")]) == 2
    assert "needs [num, 2]" in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists()


def test_digits_preset_trains_an_edm2_unet(tmp_path):
    out = tmp_path / "digits"
    assert main(["train", "--preset", "digits-cpu", "--out", str(out), "--set", "train.steps=4",
                 "--set", "train.progress=false", "--set", "train.batch_size=16", "--set", "eval.num_samples=64",
                 "--set", "eval.steps=[1,2]", "--set", "eval.metrics=[]"]) == 0
    from flowmaps.nets.mp import MPConv
    from flowmaps.run import load_run

    run = load_run(out)
    assert run.step == 4 and run.shape == (1, 8, 8)
    assert (out / "samples-final-map.png").is_file()
    raw = load_run(out, ema=0)  # forced weight normalisation ran after every step
    for m in raw.fm.modules():
        if isinstance(m, MPConv):
            rows = m.weight.flatten(1).norm(dim=1)
            assert torch.allclose(rows, torch.full_like(rows, m.weight[0].numel() ** 0.5), rtol=1e-3)


@pytest.mark.parametrize("method", ["lmd", "emd", "pfmm"])
def test_teacher_distillation_from_a_trained_run(run_dir, tmp_path, method):
    out = tmp_path / method
    assert main(["train", "--preset", "gaussian", "--out", str(out), "--set", f"method={method}",
                 "--set", f"teacher.run={run_dir}", *TINY, "--no-eval"]) == 0
    assert (out / "checkpoints").is_dir()


def test_posthoc_ema_command_and_sampling_with_it(run_dir, tmp_path, capsys):
    assert main(["ema", "--run", str(run_dir), "--sigma-rel", "0.07", "0.12"]) == 0
    assert (run_dir / "ema" / "sigma_rel=0.07.safetensors").is_file()
    assert main(["sample", "--run", str(run_dir), "--steps", "1", "--num", "8", "--ema", "sigma_rel=0.07",
                 "--out", str(tmp_path / "x.npy")]) == 0
    assert "EMA sigma_rel=0.07" in capsys.readouterr().out
    assert main(["ema", "--run", str(run_dir), "--sigma-rel", "0.5"]) == 2
    assert "sigma_rel must lie in" in capsys.readouterr().err
    assert main(["eval", "--run", str(run_dir), "--steps", "1", "--num", "500", "--ema", "auto"]) == 0
    assert "evaluating with EMA" in capsys.readouterr().err


def test_one_command_from_a_point_cloud(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ring.npy", np.stack([np.cos(a := rng.uniform(0, 6.28, 4000)), np.sin(a)], 1).astype(np.float32))
    out = tmp_path / "ring"
    assert main(["train", "--data", str(tmp_path / "ring.npy"), "--minutes", "0.03", "--out", str(out),
                 "--set", "train.progress=false", "--set", "eval.num_samples=2000", "--set", "eval.steps=[1,2]"]) == 0
    err = capsys.readouterr().err
    assert "settings chosen" in err and "net.kind" in err and "budget" in err
    assert json.loads((out / "autoconfig.json").read_text())[0]["key"] == "data.name"
    result = json.loads((out / "eval.json").read_text())
    assert {"w2", "sliced_w2", "energy"} <= set(result["metrics"]["map"]["1"])
    assert "perfect sampler (exact data)" in result["reference"]
