"""A run folder written before the restructure of issue 20 (commit 3368eb1, kept in
tests/fixtures/run_3368eb1: a 6-step gaussian run) still loads, samples and configures the
same objective."""
import shutil
from pathlib import Path

import numpy as np

from flowmaps.cli import main
from flowmaps.config import build_config, load_yaml
from flowmaps.run import load_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_3368eb1"


def test_an_old_run_folder_loads_and_samples(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(FIXTURE, run_dir)
    old = load_yaml(run_dir / "config.yaml")
    cfg = build_config(old)
    new = cfg.to_dict()
    for section, values in old.items():  # every key the old config wrote reads back to its value
        if isinstance(values, dict):
            assert {k: new[section][k] for k in values} == values, section
        else:
            assert new[section] == values, section
    assert cfg.train.step_plan == []  # a key added since: its default
    objective = cfg.objective_config()
    assert (objective.method, objective.eta, objective.weighting, objective.label_dropout) == ("lsd", 0.75, "none", 0.0)
    run = load_run(run_dir)
    assert run.step == 6 and run.shape == (2,)
    assert main(["sample", "--run", str(run_dir), "--steps", "2", "--num", "8", "--out", str(tmp_path / "s.npy")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (8, 2) and np.isfinite(x).all()
