"""Each recipe number lives once: the CPU presets are the fragments --data uses."""
from flowmaps import recipes
from flowmaps.autoconfig import auto_config
from flowmaps.config import build_config, get_key, preset


def _agrees(cfg, choices, skip=()):
    for c in choices:
        if c.key not in skip:
            assert get_key(cfg, c.key) == c.value, c.key


def test_checker_cpu_is_the_points_recipe_that_data_checker_chooses():
    cfg = build_config(preset("checker-cpu"))
    _agrees(cfg, recipes.self_distillation() + recipes.points("checker", 2, cpu=True))
    auto = auto_config("checker", minutes=4.5, device="cpu")
    _agrees(cfg, auto, skip={"train.minutes"})  # --data checker trains the main job's recipe
    assert cfg.train.steps == 8000 and cfg.data.name == "checker"


def test_the_digits_presets_are_the_image_recipe():
    image = recipes.images(cpu=True, batch=128)
    shared = {"train.lr", "train.betas", "loss.curriculum_fm", "loss.curriculum_ramp", "train.grad_clip", "sigma",
              "train.batch_size"}
    for name in ("digits-cpu", "digits-cond-cpu"):
        _agrees(build_config(preset(name)), [c for c in image if c.key in shared])
    dit = build_config(preset("digits-dit-cpu"))
    _agrees(dit, recipes.transformer_optimiser())
    assert dit.train.minutes == 9.0 and dit.train.precision == "auto" and dit.net.kind == "dit"


def test_merged_layers_nest_and_later_ones_win():
    a = {"train": {"lr": 1.0, "betas": [0.9, 0.9]}, "sigma": 0.5}
    b = {"train": {"lr": 2.0}, "net": {"kind": "mlp"}}
    out = recipes.merged(a, b)
    assert out == {"train": {"lr": 2.0, "betas": [0.9, 0.9]}, "sigma": 0.5, "net": {"kind": "mlp"}}
    out["train"]["betas"].append(1)
    assert a["train"]["betas"] == [0.9, 0.9]  # copies, not shared lists
