"""The application layer: configure, start, finish; the CLI and the benchmarks both call it."""
import json

import pytest

from flowmaps import pipeline
from flowmaps.config import ConfigError, build_config, preset
from flowmaps.errors import UsageError
from flowmaps.evaluate import EvalOptions
from flowmaps.train.trainer import Trainer

TINY = ["net.width=32", "net.depth=2", "train.steps=12", "train.batch_size=64", "train.progress=false",
        "train.ckpt_every=6", "eval.num_samples=2000", "train.log_every=6", "eval.steps=[1,2]"]


def test_configure_builds_from_a_preset_with_overrides_and_refuses_contradictions(tmp_path):
    setup = pipeline.configure(preset_name="gaussian", overrides=TINY)
    assert setup.cfg.train.steps == 12 and setup.choices is None and "net.width" in setup.overridden
    with pytest.raises(UsageError, match="train needs --data PATH, --preset NAME or --config FILE"):
        pipeline.configure()
    with pytest.raises(UsageError, match="--minutes must be positive"):
        pipeline.configure(preset_name="gaussian", minutes=0)
    with pytest.raises(UsageError, match="--resume continues a run from its saved config"):
        pipeline.configure(data="moons", resume=True)
    with pytest.raises(UsageError, match="is .* a run folder"):
        pipeline.configure(resume=True, out=tmp_path)
    with pytest.raises(UsageError, match="--resume needs --out"):
        pipeline.configure(resume=True)
    auto = pipeline.configure(data="moons", overrides=["train.steps=10"])
    assert auto.choices and auto.cfg.train.minutes is None and auto.cfg.train.steps == 10


def test_the_trainer_leaves_the_config_it_was_given_as_it_was(tmp_path):
    cfg = build_config(preset("gaussian"), {"net": {"width": 16, "depth": 2},
                                            "train": {"minutes": 0.02, "precision": "auto", "progress": False}})
    trainer = pipeline.start_training(cfg, tmp_path / "run")
    trainer.fit()
    assert cfg.train.minutes == 0.02 and cfg.train.precision == "auto"  # as given
    assert trainer.cfg.train.minutes is None and trainer.cfg.train.precision in ("fp32", "bf16")
    assert trainer.cfg.train.steps == trainer.step == trainer.budget["steps"]


def test_periodic_evaluation_needs_the_pipelines_hook(tmp_path):
    cfg = build_config(preset("gaussian"), {"net": {"width": 16, "depth": 2},
                                            "train": {"steps": 4, "eval_every": 2, "progress": False}})
    with pytest.raises(ConfigError, match="train.eval_every needs an evaluation hook"):
        Trainer(cfg, tmp_path / "bare").fit()


def test_finish_evaluates_audits_and_reports_a_trained_run(tmp_path):
    setup = pipeline.configure(preset_name="gaussian", overrides=TINY + ["data.holdout=0.0"])
    trainer = pipeline.start_training(setup, tmp_path / "run")
    trainer.fit()
    done = pipeline.finish(trainer)
    assert set(done.result["metrics"]["map"]) == {"1", "2"} and "map_mse" in done.result["metrics"]["map"]["1"]
    prov = done.result["provenance"]
    assert prov["ema"] == done.ema and prov["step"] == 12 and prov["devices"] == 1
    assert done.selection is not None and done.result["ema_selection"]["chosen"] == done.ema
    assert done.report is not None and done.report.is_file()
    assert json.loads((tmp_path / "run" / "eval.json").read_text()) == done.result
    assert all(p.is_file() for p in done.written) and (tmp_path / "run" / "samples-final.png") in done.written


def test_evaluate_saved_changes_only_what_an_evaluation_may(tmp_path):
    setup = pipeline.configure(preset_name="gaussian", overrides=TINY)
    trainer = pipeline.start_training(setup, tmp_path / "run")
    trainer.fit()
    done = pipeline.evaluate_saved(tmp_path / "run", EvalOptions(steps=[1], metrics=["w2"]), ema="raw", num=500)
    assert list(done.result["metrics"]["map"]) == ["1"] and set(done.result["metrics"]["map"]["1"]) == {"w2", "nfe"}
    assert done.result["provenance"]["num_samples"] == 500 and done.data_missing is None
    with pytest.raises(UsageError, match="eval --set net.width: a trained run's model is fixed"):
        pipeline.evaluate_saved(tmp_path / "run", EvalOptions(), overrides=["net.width=8"])
    with pytest.raises(ConfigError, match="metric kl needs the checkerboard"):
        pipeline.evaluate_saved(tmp_path / "run", EvalOptions(metrics=["kl"]))
