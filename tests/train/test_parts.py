"""The parts a run trains (data, sigma, flow map, objective), built from its config or given."""
import pytest
import torch

from flowmaps.config import ConfigError, build_config, preset
from flowmaps.train.parts import build_parts
from flowmaps.train.trainer import Trainer


def _cfg(**over):
    base = preset("gaussian")
    base["net"] = {"kind": "mlp", "width": 32, "depth": 2}
    base["train"].update({"batch_size": 64, "progress": False, "steps": 3, "ckpt_every": 10})
    return build_config(base, over)


def test_given_parts_train_as_the_built_ones(tmp_path):
    cfg = _cfg()
    built = Trainer(cfg, tmp_path / "built")
    built.fit()
    torch.manual_seed(cfg.seed)
    parts = build_parts(cfg, torch.device("cpu"))
    given = Trainer(cfg, tmp_path / "given", parts=parts)
    assert given.fm is parts.fm and given.source is parts.source and given.objective is parts.objective
    given.fit()
    for (k, a), b in zip(built.fm.state_dict().items(), given.fm.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_conditional_run_needs_labels():
    with pytest.raises(ConfigError, match="data.conditional=true needs class labels, and gaussian has none"):
        build_parts(_cfg(data={"name": "gaussian", "conditional": True}), torch.device("cpu"))
