import json
import time

import pytest
import torch

from flowmaps.config import ConfigError, build_config, preset
from flowmaps.pipeline import start_training
from flowmaps.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from flowmaps.train.trainer import Trainer, TrainingDiverged, lr_at


def _cfg(**train):
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["train"].update({"batch_size": 64, "progress": False, "log_every": 5, "ckpt_every": 10, **train})
    return build_config(base)


def _same_run(a: Trainer, b: Trainer) -> None:
    for (k, x), y in zip(a.fm.state_dict().items(), b.fm.state_dict().values()):
        assert torch.equal(x, y), k
    assert a.ema.names and a.ema.count == b.ema.count
    for d in a.ema.names:
        for k, x in a.ema.state(d).items():
            assert torch.equal(x, b.ema.state(d)[k]), k


def _scale_losses(monkeypatch, tr: Trainer, factor) -> None:
    """Multiply each step's loss by ``factor()`` (nan poisons the step), as a drifted run would."""
    real = tr._loss

    def scaled(draws):
        out = real(draws)
        out.loss = out.loss * factor()
        return out

    monkeypatch.setattr(tr, "_loss", scaled)


def test_resume_is_exact(tmp_path):
    """A run stopped at step 10 of 20 and resumed equals the straight run, bit for bit."""
    straight = Trainer(_cfg(steps=20), tmp_path / "a")
    straight.fit()
    first = Trainer(_cfg(steps=20), tmp_path / "b")
    for _ in range(10):
        first.train_step()
    first.checkpoint()  # as the periodic checkpoint before a crash
    resumed = Trainer(_cfg(steps=20), tmp_path / "b", resume=True)
    assert resumed.step == 10
    resumed.fit()
    _same_run(straight, resumed)


def test_extending_a_run_with_a_schedule_that_ignores_the_end_is_exact(tmp_path):
    """With the paper's inverse-sqrt schedule, 10 steps + resume to 20 = 20 straight."""
    straight = Trainer(_cfg(steps=20, schedule="inverse_sqrt"), tmp_path / "a")
    straight.fit()
    Trainer(_cfg(steps=10, schedule="inverse_sqrt"), tmp_path / "b").fit()
    resumed = Trainer(_cfg(steps=20, schedule="inverse_sqrt"), tmp_path / "b", resume=True)
    resumed.fit()
    _same_run(straight, resumed)
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
    _scale_losses(monkeypatch, tr, lambda: float("nan"))
    rec = tr.train_step()
    assert rec.get("skipped") and tr.bad_steps == 1
    for k, v in tr.fm.state_dict().items():
        assert torch.equal(v, before[k])  # a bad step changes nothing
    with pytest.raises(TrainingDiverged, match="consecutive steps"):
        tr.fit()
    assert list_checkpoints(tmp_path / "n" / "checkpoints") == []


def test_a_gradient_spike_is_skipped_and_training_goes_on(tmp_path, monkeypatch):
    """One sample sent far from the data can make one step's gradient 1e6 times the usual: that
    update is skipped (the weights stay), and training goes on; a run whose every step spikes
    stops with TrainingDiverged naming the guard."""
    tr = Trainer(_cfg(steps=60, max_bad_steps=3, skip_spikes=100.0), tmp_path / "s")
    for _ in range(25):
        assert not tr.train_step().get("skipped")
    scale = {"k": 1e6}
    _scale_losses(monkeypatch, tr, lambda: scale["k"])
    before = {k: v.clone() for k, v in tr.fm.state_dict().items()}
    rec = tr.train_step()
    assert rec.get("skipped") and rec.get("spike") and tr.bad_steps == 1
    assert all(torch.equal(v, before[k]) for k, v in tr.fm.state_dict().items())
    scale["k"] = 1.0
    assert not tr.train_step().get("skipped") and tr.bad_steps == 0
    scale["k"] = 1e6
    with pytest.raises(TrainingDiverged, match="gradient norm over 100x"):
        for _ in range(5):
            tr.train_step()
    # the guard is off at 0 and in the paper's presets
    assert preset("checker")["train"]["skip_spikes"] == 0.0


@pytest.mark.parametrize("recover", [0, 2])
def test_a_diverged_run_goes_back_to_its_checkpoint_with_half_the_learning_rate(tmp_path, monkeypatch, recover):
    """Steps 25.. go bad (as a run whose weights drifted would) until the run recovers: it restarts
    from its step-20 checkpoint with the learning rate halved, finishes, and records why; with
    train.recover=0 it stops at once."""
    tr = Trainer(_cfg(steps=40, max_bad_steps=3, recover=recover), tmp_path / f"r{recover}")
    state = {"poison": True}
    _scale_losses(monkeypatch, tr, lambda: float("nan") if state["poison"] and tr.step >= 24 else 1.0)
    real_recover = tr.recover

    def recover_once(error):
        real_recover(error)
        state["poison"] = False

    monkeypatch.setattr(tr, "recover", recover_once)
    if recover == 0:
        with pytest.raises(TrainingDiverged, match="consecutive steps"):
            tr.fit()
        return
    tr.fit()
    assert tr.step == 40 and tr.lr_scale == 0.5
    assert tr.recoveries == [{"diverged_at": 27, "restarted_from": 20, "lr_scale": 0.5}]
    meta = json.loads((tmp_path / "r2" / "run.json").read_text())
    assert meta["recoveries"] == tr.recoveries
    _, _, ck = load_checkpoint(list_checkpoints(tmp_path / "r2" / "checkpoints")[-1])
    assert ck["lr_scale"] == 0.5 and ck["recoveries"] == tr.recoveries  # a resumed run keeps the halved rate
    assert preset("checker")["train"]["recover"] == 0  # the paper's presets stop instead


def test_divergences_before_the_next_checkpoint_each_halve_the_rate_and_count(tmp_path, monkeypatch):
    """Steps 25.. stay bad while the learning rate is above a quarter: the first recovery goes back
    to the step-20 checkpoint at half the rate, the steps still go bad before the next checkpoint,
    and the second goes back to the same checkpoint at a quarter. With recover=1 the second
    divergence stops the run (the count is not reset by going back)."""
    for recover, scale in ((2, 0.25), (1, None)):
        tr = Trainer(_cfg(steps=40, max_bad_steps=3, recover=recover), tmp_path / f"r{recover}")
        _scale_losses(monkeypatch, tr, lambda tr=tr: float("nan") if tr.lr_scale > 0.25 and tr.step >= 24 else 1.0)
        if scale is None:
            with pytest.raises(TrainingDiverged, match=r"after 1 restart\(s\)"):
                tr.fit()
            continue
        tr.fit()
        assert tr.step == 40 and tr.lr_scale == scale
        assert [r["restarted_from"] for r in tr.recoveries] == [20, 20] and tr.recoveries[-1]["lr_scale"] == 0.25


def test_the_training_state_goes_back_exactly(tmp_path):
    """snapshot / load_state_dict (used by the budget probe and the restart from step 0): steps
    taken after going back equal the steps taken the first time, bit for bit."""
    tr = Trainer(_cfg(steps=10), tmp_path / "s")
    tr.train_step()
    saved = tr.snapshot()
    first = [tr.train_step()["loss"] for _ in range(3)]
    weights = {k: v.clone() for k, v in tr.fm.state_dict().items()}
    tr.load_state_dict(saved)
    assert tr.step == 1
    assert [tr.train_step()["loss"] for _ in range(3)] == first
    for k, v in tr.fm.state_dict().items():
        assert torch.equal(v, weights[k]), k


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
    start_training(cfg, tmp_path / "e").fit()
    lines = (tmp_path / "e" / "eval_history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 10]
    assert "map_mse" in json.loads(lines[-1])["metrics"]["map"]["1"]
    assert (tmp_path / "e" / "samples-step-00000010.png").is_file()


def test_minutes_budget_fixes_the_step_count_and_reruns_exactly(tmp_path):
    from flowmaps.config import load_yaml

    cfg = _cfg(minutes=0.04, steps=5)
    tr = Trainer(cfg, tmp_path / "budget")
    tr.fit()
    saved = build_config(load_yaml(tmp_path / "budget" / "config.yaml"))
    meta = json.loads((tmp_path / "budget" / "run.json").read_text())
    assert saved.train.minutes is None and saved.train.steps == tr.step == meta["budget"]["steps"] > 5
    assert meta["budget"]["minutes"] == pytest.approx(0.04) and meta["budget"]["measured_step_seconds"] > 0
    # the probe steps left no trace: a rerun of the saved config gives the same weights, bit for bit
    again = Trainer(saved, tmp_path / "again")
    again.fit()
    for (k, a), b in zip(tr.fm.state_dict().items(), again.fm.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(tr.ema.flat()["sigma_rel=0.05/net.body.0.weight"], again.ema.flat()["sigma_rel=0.05/net.body.0.weight"])


def test_max_steps_caps_the_steps_a_budget_plans(tmp_path):
    tr = Trainer(_cfg(minutes=0.2, max_steps=12), tmp_path / "capped")
    tr.fit()
    meta = json.loads((tmp_path / "capped" / "run.json").read_text())
    assert tr.step == meta["budget"]["steps"] == meta["budget"]["capped_by_max_steps"] == 12
    with pytest.raises(ConfigError, match="train.max_steps: must be at least 1"):
        _cfg(max_steps=0)


def test_stale_temporaries_are_cleared_on_start_and_resume(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r"
    Trainer(_cfg(steps=10), out).fit()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    stale_ckpt = out / "checkpoints" / f".step-00000020.tmp-{pid}"
    stale_ckpt.mkdir()
    (stale_ckpt / "model.safetensors").write_bytes(b"half written")
    stale_snap = out / "ema_snapshots" / f".step-00000020.tmp-{pid}"
    stale_snap.write_bytes(b"half written")
    live = out / "checkpoints" / f".step-00000030.tmp-{__import__('os').getppid()}"  # a running process: kept
    live.mkdir()
    tr = Trainer(_cfg(steps=20), out, resume=True)
    assert not stale_ckpt.exists() and not stale_snap.exists() and live.exists()
    tr.fit()
    assert [p.name for p in list_checkpoints(out / "checkpoints")][-1] == "step-00000020"


def test_snapshots_are_written_over_the_run(tmp_path):
    from flowmaps.train.snapshots import list_snapshots

    Trainer(_cfg(steps=40, ema_snapshots=4), tmp_path / "s").fit()
    assert [st for st, _ in list_snapshots(tmp_path / "s" / "ema_snapshots")] == [10, 20, 30, 40]


def test_budget_with_a_curriculum_times_both_kinds_of_step(tmp_path):
    """Flow-matching-only steps are cheaper: the probe times both and the step count weighs them;
    the probe leaves no trace, so the saved config reruns bit for bit."""
    from flowmaps.config import load_yaml

    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["loss"] = {"curriculum_fm": 0.3, "curriculum_ramp": 0.3}
    base["train"].update({"batch_size": 64, "progress": False, "log_every": 5, "ckpt_every": 10, "minutes": 0.04})
    tr = Trainer(build_config(base), tmp_path / "c")
    tr.fit()
    meta = json.loads((tmp_path / "c" / "run.json").read_text())
    assert meta["budget"]["probe_steps"] >= 2 * (3 + 6)  # two probes, each 3 warm-up + at least 6 timed
    saved = build_config(load_yaml(tmp_path / "c" / "config.yaml"))
    assert saved.loss.curriculum_fm == 0.3 and saved.train.steps == tr.step
    again = Trainer(saved, tmp_path / "again")
    again.fit()
    for (k, a), b in zip(tr.fm.state_dict().items(), again.fm.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_divergence_before_the_first_checkpoint_restarts_from_the_start(tmp_path, monkeypatch):
    """Steps go bad from step 3 while the learning rate is full; with it halved they are fine."""
    tr = Trainer(_cfg(steps=12, max_bad_steps=2, recover=1), tmp_path / "s")
    _scale_losses(monkeypatch, tr, lambda: float("nan") if tr.lr_scale == 1.0 and tr.step >= 3 else 1.0)
    tr.fit()
    assert tr.step == 12 and tr.recoveries == [{"diverged_at": 5, "restarted_from": 0, "lr_scale": 0.5}]
    assert json.loads((tmp_path / "s" / "run.json").read_text())["recoveries"][0]["restarted_from"] == 0


def test_a_budgeted_run_records_how_much_of_the_budget_it_used(tmp_path):
    tr = Trainer(_cfg(minutes=0.04, steps=5), tmp_path / "used")
    t0 = time.perf_counter()
    tr.fit()
    wall = time.perf_counter() - t0
    budget = json.loads((tmp_path / "used" / "run.json").read_text())["budget"]
    assert 0 < budget["seconds"] <= wall + 0.01  # rounded to 10 ms
    assert budget["used"] == pytest.approx(budget["seconds"] / (0.04 * 60), abs=5e-3)  # both rounded
    assert budget["steps"] == tr.step and "probe_seconds" in budget


def test_the_budget_probe_times_steps_at_the_full_learning_rate(tmp_path):
    """A warm-up over the probe's unknown length gave rates near 1e-11, whose subnormal floats
    slowed UNet steps 4x on x86: the probe runs at the run's learning rate, then leaves no trace."""
    tr = Trainer(_cfg(minutes=0.02, schedule="wsd", warmup=0.1), tmp_path / "p")
    start = {k: v.clone() for k, v in tr.fm.state_dict().items()}
    rates = []
    real = tr.train_step

    def step(stage=None):
        rec = real(stage)
        rates.append(rec["lr"])
        return rec

    tr.train_step = step
    tr.plan_budget(probe_seconds=0.2)
    assert rates and all(r == tr.cfg.train.lr for r in rates)
    assert tr.cfg.train.schedule == "wsd" and tr.cfg.train.warmup == 0.1 and tr.step == 0
    for k, v in tr.fm.state_dict().items():
        assert torch.equal(v, start[k]), k
