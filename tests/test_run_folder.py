"""The run folder's file names live in one type; a trained, evaluated run writes those files."""
import json
from pathlib import Path

from flowmaps.cli import main
from flowmaps.run_folder import RunFolder


def test_a_trained_run_writes_the_files_the_folder_names(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--preset", "gaussian", "--out", str(out), "--set", "net.width=32", "--set", "net.depth=2",
                 "--set", "train.steps=10", "--set", "train.batch_size=64", "--set", "train.progress=false",
                 "--set", "train.log_every=5", "--set", "eval.num_samples=200", "--set", "eval.steps=[1]",
                 "--set", "eval.ema=raw"]) == 0
    folder = RunFolder(out)
    assert folder.is_run() and not RunFolder(tmp_path).is_run()
    for path in (folder.config, folder.meta, folder.metrics, folder.evaluation, folder.training_plot, folder.report,
                 folder.samples("final")):
        assert path.is_file(), path
    assert folder.checkpoints.is_dir() and folder.ema_snapshots.is_dir()
    assert folder.sample_grids("final") == [folder.samples("final")]
    assert [r["step"] for r in folder.read_jsonl(folder.metrics)] == [5, 10]
    assert folder.read_jsonl(folder.eval_history) == []  # none was asked for
    meta = folder.read_meta()
    folder.update_meta(note="kept")
    assert folder.read_meta() == {**meta, "note": "kept"}
    assert json.loads(folder.meta.read_text())["sigma"] == meta["sigma"]


def test_names():
    f = RunFolder("r")
    assert f.samples("final", "map").name == "samples-final-map.png" and f.samples("step-00000010").name == \
        "samples-step-00000010.png"
    assert (f.posthoc_ema.name, f.audit.name, f.audit_marginals.name, f.autoconfig.name) == \
        ("ema", "audit.json", "audit-marginals.png", "autoconfig.json")


def test_read_config_gives_the_runs_config_with_new_keys_defaulted():
    from flowmaps.config import build_config, load_yaml

    folder = RunFolder(Path(__file__).parent / "fixtures" / "run_3368eb1")
    cfg = folder.read_config()
    assert cfg.to_dict() == build_config(load_yaml(folder.config)).to_dict()
    assert cfg.train.steps == 6 and cfg.data.name == "gaussian" and cfg.train.step_plan == []
