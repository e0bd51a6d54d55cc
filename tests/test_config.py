import pytest

from flowmaps.config import PRESETS, ConfigError, build_config, dump_yaml, load_yaml, parse_overrides, preset


def test_defaults_and_required_keys():
    cfg = build_config()
    for key in ("method", "seed", "sigma"):
        assert hasattr(cfg, key)
    assert cfg.data.name and cfg.train.steps and cfg.train.batch_size and cfg.train.lr
    assert cfg.data.path is None


def test_unknown_key_names_it_and_the_choices():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.stepz'.*steps"):
        build_config({"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"unknown config key 'foo'"):
        build_config({"foo": 1})


def test_wrong_types_and_choices():
    with pytest.raises(ConfigError, match=r"train.steps: expected an integer"):
        build_config({"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"method: unknown value 'lsdd'; choose one of .*lsd"):
        build_config({"method": "lsdd"})
    with pytest.raises(ConfigError, match=r"sigma"):
        build_config({"sigma": "auto"})
    with pytest.raises(ConfigError, match=r"teacher.run"):
        build_config({"method": "lmd"})
    with pytest.raises(ConfigError, match="eval.ema"):
        build_config({"train": {"ema": [0.99]}, "eval": {"ema": 0.5}})
    assert build_config({"sigma": 0.5}).sigma == 0.5
    assert build_config({"sigma": "adaptive"}).sigma == "adaptive"


def test_overrides():
    o = parse_overrides(["train.lr=1e-3", "data.name=moons", "train.ema=[0.9, 0.99]", "eval.ema=0.99", "loss.full_square=true"])
    cfg = build_config(preset("checker-cpu"), o)
    assert cfg.train.lr == 1e-3 and cfg.data.name == "moons" and cfg.train.ema == [0.9, 0.99]
    assert cfg.loss.full_square is True
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])


def test_every_preset_builds_and_round_trips(tmp_path):
    for name in PRESETS:
        cfg = build_config(preset(name))
        f = tmp_path / f"{name}.yaml"
        f.write_text(dump_yaml(cfg))
        assert build_config(load_yaml(f)) == cfg


def test_paper_table_2_presets():
    c = build_config(preset("checker"))
    assert (c.net.kind, c.net.width, c.net.depth) == ("mlp", 512, 4)
    assert (c.train.batch_size, c.train.steps, c.train.lr, c.train.grad_clip) == (100_000, 150_000, 1e-3, 10.0)
    assert c.train.lr_decay_steps == 35_000 and c.loss.eta == 0.75 and c.eval.ema == 0.999
    cif = build_config(preset("cifar10"))
    assert (cif.train.batch_size, cif.train.steps, cif.train.lr, cif.train.grad_clip) == (512, 400_000, 1e-2, 1.0)
    assert cif.net.dropout == 0.13 and cif.net.channel_mult == [2, 2, 2] and cif.eval.ema == 0.9999
    for name in ("celeba64", "afhq64"):
        c64 = build_config(preset(name))
        assert (c64.train.batch_size, c64.train.steps, c64.train.precision) == (256, 800_000, "bf16")
        assert c64.net.channel_mult == [1, 2, 3, 4] and c64.net.attn_resolutions == [16, 8]


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
