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


def test_named_sets_and_errors(tmp_path):
    assert detect_data("moons") == ("moons", None)
    assert _values(auto_config("checker", device="cpu"))["train.minutes"] == 5.0
    with pytest.raises(ConfigError, match="does not exist"):
        detect_data(str(tmp_path / "nope"))
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ConfigError, match=r"\.npy or \.csv"):
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

    from flowmaps.autoconfig import detect_data, dit_patch

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
