import json

import numpy as np
import pytest

from flowmaps.autoconfig import DeviceInfo, as_layer, auto_config, detect_data, detect_resolution
from flowmaps.config import ConfigError, build_config


def _values(choices):
    return {c.key: c.value for c in choices}


def test_point_cloud_gets_an_mlp(tmp_path):
    np.save(tmp_path / "cloud.npy", np.random.default_rng(0).standard_normal((500, 3)).astype(np.float32))
    choices = auto_config(str(tmp_path / "cloud.npy"), minutes=2, device="cpu")
    v = _values(choices)
    assert v["data.name"] == "points" and v["net.kind"] == "mlp" and v["train.minutes"] == 2
    assert all(c.why for c in choices)
    cfg = build_config(as_layer(choices))
    assert cfg.data.path.endswith("cloud.npy") and cfg.train.schedule == "wsd" and cfg.eval.ema == "auto"
    assert cfg.loss.coupling == "minibatch_ot" and cfg.net.activation == "silu"
    # a set scored against its exact (independent-coupling) map keeps the paper's coupling
    assert _values(auto_config("gmm", device="cpu"))["loss.coupling"] == "independent"


def test_a_table_is_standardised_held_out_and_capped_in_steps(tmp_path):
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(0, 5, 300), rng.lognormal(0, 1, 300), rng.integers(0, 2, 300)], 1)
    np.savetxt(tmp_path / "t.csv", x, delimiter=",", header="a,b,c", comments="")
    choices = auto_config(str(tmp_path / "t.csv"), minutes=2, device="cpu")
    v, why = _values(choices), {c.key: c.why for c in choices}
    assert v["data.columns"] == "auto" and "1 real, 1 positive, 1 log-transformed, 1 category" in why["data.columns"]
    assert v["data.holdout"] == 0.2 and "60 of 300 rows held out" in why["data.holdout"]
    assert v["train.max_steps"] == 960 and v["train.batch_size"] == 512  # one batch of 2,048 per training row, in steps of 512
    np.savetxt(tmp_path / "small.csv", x[:40], delimiter=",", header="a,b,c", comments="")
    v = _values(auto_config(str(tmp_path / "small.csv"), minutes=2, device="cpu"))
    assert v["data.holdout"] == 0.0 and v["train.max_steps"] == 600  # at least 150 batches of 2,048


def test_named_sets_and_errors(tmp_path):
    assert detect_data("moons") == ("moons", None)
    assert _values(auto_config("checker", device="cpu"))["train.minutes"] == 5.0
    with pytest.raises(ConfigError, match="does not exist"):
        detect_data(str(tmp_path / "nope"))
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ConfigError, match=r"a table \(\.csv, \.tsv, \.parquet\) or a \.npy"):
        detect_data(str(tmp_path / "x.txt"))


def test_image_folder_resolution_and_unet(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i, size in enumerate([(40, 30), (50, 36), (36, 36)]):
        Image.new("RGB", size, (i * 40, 0, 0)).save(tmp_path / "imgs" / f"{i}.png")
    assert detect_resolution(tmp_path / "imgs", DeviceInfo("cpu"))[0] == 32
    (tmp_path / "big").mkdir()
    Image.new("RGB", (300, 300)).save(tmp_path / "big" / "a.png")
    res, why = detect_resolution(tmp_path / "big", DeviceInfo("cpu"))
    assert res == 64 and "capped" in why
    assert detect_resolution(tmp_path / "big", DeviceInfo("cpu"), minutes=5)[0] == 16  # what 5 CPU minutes can train
    assert detect_resolution(tmp_path / "big", DeviceInfo("cpu"), minutes=20)[0] == 32
    assert detect_resolution(tmp_path / "big", DeviceInfo("cuda"))[0] == 128
    v = _values(auto_config(str(tmp_path / "imgs"), minutes=30, device="cpu"))
    assert v["data.name"] == "folder" and v["data.resolution"] == 32 and v["net"]["kind"] == "edm2"
    assert v["net"]["channel_mult"] == [1, 2, 2]
    assert _values(auto_config(str(tmp_path / "imgs"), device="cpu"))["data.resolution"] == 16  # 5 CPU minutes
    cfg = build_config(as_layer(auto_config(str(tmp_path / "imgs"), minutes=30, device="cpu")), {"net": {"model_channels": 16}})
    assert cfg.net.model_channels == 16  # --set wins over every automatic choice
    assert json.dumps(as_layer(auto_config("digits", device="cpu")))  # serialisable (saved with the run)


def test_array_files_get_a_dit_with_few_tokens(tmp_path):
    import numpy as np

    from flowmaps.autoconfig import detect_data
    from flowmaps.recipes import dit_patch

    assert dit_patch((4, 32, 32), 16) == 8 and dit_patch((64, 1), 16) == 4 and dit_patch((1, 8, 8), 16) == 2
    assert dit_patch((1, 28, 28), 16) == 7 and dit_patch((3, 6, 6), 4) == 3  # any divisor, not only powers of two
    assert dit_patch((4, 14, 14), 16) == 2  # 49 tokens are nearer 16 than patch 7's 4
    assert dit_patch((3, 6, 4), 4) == 2  # 6 tokens: the nearest a dividing patch gets
    np.save(tmp_path / "seq.npy", np.zeros((10, 16, 2), np.float32))
    np.save(tmp_path / "flat.npy", np.zeros((10, 5), np.float32))
    assert detect_data(str(tmp_path / "seq.npy"))[0] == "array"
    assert detect_data(str(tmp_path / "flat.npy"))[0] == "points"
    folder = tmp_path / "lat"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((10, 4, 8, 8), np.float32))
    assert detect_data(str(folder))[0] == "array"


def _cost(calls):
    """A stand-in step timer: seconds grow with pixels, channels and batch (16x16, 16 channels,
    batch 32: 0.1 s), and every call is recorded."""
    def seconds(res, channels, batch):
        calls.append((res, channels, batch))
        return 0.1 * (res / 16) ** 2 * (channels / 16) * (batch / 32)
    return seconds


def test_cpu_image_recipe_by_measurement():
    from flowmaps.autoconfig import CPU_IMAGE_LADDER, MIN_CPU_IMAGE_STEPS, choose_cpu_image_recipe

    # 3 minutes: 1,800 steps of the cheapest at 16 x 16, under the 2,000 wanted: the cheapest, one timing
    calls = []
    pick = choose_cpu_image_recipe([16, 32, 64], 180.0, _cost(calls))
    assert (pick.resolution, pick.channels, pick.batch) == (16, *CPU_IMAGE_LADDER[0]) and calls == [(16, 16, 32)]
    assert "cheapest" in pick.why and "100 ms" in pick.why
    # 15 minutes: 16 x 16 fits 9,000 steps, 32 x 32 only 2,250, so 32 x 32 with the cheapest UNet; the
    # next rung (twice the batch) would leave 1,125
    calls = []
    pick = choose_cpu_image_recipe([16, 32, 64], 900.0, _cost(calls))
    assert (pick.resolution, pick.channels, pick.batch) == (32, 16, 32)
    assert calls == [(16, 16, 32), (32, 16, 32), (64, 16, 32), (32, 16, 64)]
    assert pick.step_seconds * MIN_CPU_IMAGE_STEPS <= 900.0 and "largest" in pick.why
    # a long budget at one resolution climbs the whole ladder
    pick = choose_cpu_image_recipe([16], 3600.0, _cost([]))
    assert (pick.channels, pick.batch) == CPU_IMAGE_LADDER[-1]


def test_auto_config_times_cpu_image_candidates(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.new("RGB", (70, 64), (i * 40, 0, 0)).save(tmp_path / "imgs" / f"{i}.png")
    seen = []

    def timer(layer, shape, sigma):  # what auto_config hands the timer: a buildable layer
        cfg = build_config(layer)
        seen.append((shape, cfg.net.model_channels, cfg.train.batch_size))
        return 0.1 * (shape[1] / 16) ** 2 * (cfg.net.model_channels / 16) * (cfg.train.batch_size / 32)

    choices = auto_config(str(tmp_path / "imgs"), minutes=15, device="cpu", step_timer=timer)
    v, why = _values(choices), {c.key: c.why for c in choices}
    assert v["data.resolution"] == 32 and v["net"]["model_channels"] == 16 and v["train.batch_size"] == 32
    assert v["net"]["channel_mult"] == [1, 2, 2] and seen[0] == ((3, 16, 16), 16, 32)
    assert 14.9 < v["train.minutes"] <= 15 and "timing" in why["train.minutes"]  # its seconds come off the budget
    assert "measured" in why["net"] and "measured" in why["data.resolution"]
    # a named set keeps its resolution; only the UNet and batch are timed
    v = _values(auto_config("digits", minutes=5, device="cpu", step_timer=timer))
    assert "data.resolution" not in v and v["net"]["model_channels"] == 32 and v["train.batch_size"] == 64
    # without a timer (or on a GPU) the fixed rule stands
    assert _values(auto_config(str(tmp_path / "imgs"), minutes=15, device="cpu"))["net"]["model_channels"] == 32


def test_cli_times_the_image_recipe_inside_the_budget(tmp_path, monkeypatch):
    from PIL import Image

    import flowmaps.autoconfig
    import flowmaps.step_timing
    from flowmaps.cli import main

    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    argv = ["--data", str(tmp_path / "imgs"), "--minutes", "0.05", "--no-eval", "--set", f"data.cache={tmp_path / 'cache'}",
            "--set", "train.progress=false"]
    # so short a budget takes the cheapest candidate without timing any
    assert main(["train", "--out", str(tmp_path / "short"), *argv]) == 0
    auto = {c["key"]: c for c in json.loads((tmp_path / "short" / "autoconfig.json").read_text())}
    assert "untimed" in auto["net"]["why"] and auto["net"]["value"]["model_channels"] == 16
    assert auto["data.resolution"]["value"] == 16 and auto["train.minutes"]["value"] == 0.05
    # the timed path, with a stand-in timer (a real one would spend the budget): the CLI hands it over,
    # the choice follows it, and the run's budget is what the timing left
    timed = []

    def fake(layer, shape, sigma):  # only the cheapest candidate at 16 x 16 fits, so training stays short
        timed.append((shape, layer["net"]["model_channels"], layer["train"]["batch_size"]))
        return 1e-4 if timed[-1] == ((3, 16, 16), 16, 32) else 10.0
    monkeypatch.setattr(flowmaps.autoconfig, "MIN_TIMED_BUDGET_S", 0.0)
    monkeypatch.setattr(flowmaps.step_timing, "step_seconds", fake)
    assert main(["train", "--out", str(tmp_path / "timed"), *argv]) == 0
    auto = {c["key"]: c for c in json.loads((tmp_path / "timed" / "autoconfig.json").read_text())}
    assert [t[0] for t in timed] == [(3, 16, 16), (3, 32, 32), (3, 16, 16)] and auto["data.resolution"]["value"] == 16
    assert "measured here: 0 ms" in auto["net"]["why"] and "the largest" in auto["net"]["why"]
    assert "timing" in auto["train.minutes"]["why"]
    meta = json.loads((tmp_path / "timed" / "run.json").read_text())
    assert meta["budget"]["minutes"] == auto["train.minutes"]["value"] <= 0.05
