import json

import pytest
import torch

from flowmaps.config import build_config, preset
from flowmaps.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from flowmaps.train.trainer import Trainer, TrainingDiverged, lr_at


def _cfg(**train):
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["train"].update({"batch_size": 64, "progress": False, "log_every": 5, "ckpt_every": 10, **train})
    return build_config(base)


def test_resume_is_exact(tmp_path):
    straight = Trainer(_cfg(steps=20), tmp_path / "a")
    straight.fit()
    first = Trainer(_cfg(steps=10), tmp_path / "b")
    first.fit()
    resumed = Trainer(_cfg(steps=20), tmp_path / "b", resume=True)
    assert resumed.step == 10
    resumed.fit()
    for (k, a), b in zip(straight.fm.state_dict().items(), resumed.fm.state_dict().values()):
        assert torch.equal(a, b), k
    for d in straight.ema.decays:
        for k, a in straight.ema.state(d).items():
            assert torch.equal(a, resumed.ema.state(d)[k]), k
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 10, 15, 20]


def test_existing_run_needs_resume(tmp_path):
    Trainer(_cfg(steps=10), tmp_path / "r").fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(_cfg(steps=10), tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(_cfg(steps=10), tmp_path / "empty", resume=True)


def test_nan_steps_are_skipped_then_training_stops(tmp_path, monkeypatch):
    tr = Trainer(_cfg(steps=50, max_bad_steps=3), tmp_path / "n")
    before = {k: v.clone() for k, v in tr.fm.state_dict().items()}
    real = tr.objective.__call__

    def poisoned(fm, x1, cond=None, generator=None):
        out = real(fm, x1, cond, generator)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(tr, "objective", poisoned)
    rec = tr.train_step()
    assert rec.get("skipped") and tr.bad_steps == 1
    for k, v in tr.fm.state_dict().items():
        assert torch.equal(v, before[k])  # a bad step changes nothing
    with pytest.raises(TrainingDiverged, match="consecutive steps"):
        tr.fit()
    assert list_checkpoints(tmp_path / "n" / "checkpoints") == []


def test_checkpoints_are_atomic_pruned_and_never_hold_nan(tmp_path):
    root = tmp_path / "ck"
    w = {"w": torch.ones(3)}
    for step in (1, 2, 3, 4):
        save_checkpoint(root, step, w, {}, {"step": step}, keep=2)
    assert [p.name for p in list_checkpoints(root)] == ["step-00000003", "step-00000004"]
    (root / ".step-00000005.tmp-1").mkdir()  # a crash mid-write leaves only a hidden temp folder
    assert list_checkpoints(root)[-1].name == "step-00000004"
    with pytest.raises(FloatingPointError, match="NaN"):
        save_checkpoint(root, 6, {"w": torch.tensor([float("nan")])}, {}, {"step": 6}, keep=2)
    model, _, state = load_checkpoint(list_checkpoints(root)[-1])
    assert torch.equal(model["w"], w["w"]) and state["step"] == 4


def test_lr_schedule_is_edm2_inverse_sqrt():
    cfg = build_config(preset("checker"))
    assert lr_at(0, cfg) == lr_at(35_000, cfg) == 1e-3
    assert abs(lr_at(140_000, cfg) - 1e-3 / 2) < 1e-12


def test_accumulation_matches_one_big_step_shape(tmp_path):
    tr = Trainer(_cfg(steps=2, accum_steps=2), tmp_path / "acc")
    rec = tr.train_step()
    assert rec["_bins"]["t"].numel() == 2 * 24  # each micro-batch of 32 splits 24 : 8


def test_periodic_evaluation_writes_history_and_plots(tmp_path):
    cfg = _cfg(steps=10, eval_every=5)
    cfg.eval.num_samples = 500
    Trainer(cfg, tmp_path / "e").fit()
    lines = (tmp_path / "e" / "eval_history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 10]
    assert "map_mse" in json.loads(lines[-1])["metrics"]["map"]["1"]
    assert (tmp_path / "e" / "samples-step-00000010.png").is_file()
