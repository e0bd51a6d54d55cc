import json

import pytest
import torch

from flowmaps.config import ConfigError, build_config, preset
from flowmaps.run import load_run
from flowmaps.train.trainer import Trainer


def _cfg(method="fm", time_input="s_t", width=32, steps=30, **train):
    base = preset("gaussian")
    base["method"] = method
    base["net"] = {"kind": "mlp", "width": width, "depth": 2, "time_input": time_input}
    base["train"].update({"steps": steps, "batch_size": 64, "progress": False, "log_every": 10, "ckpt_every": 10,
                          "ema_snapshots": 0, **train})
    base["eval"] = {"ema": "raw"}
    return build_config(base)


@pytest.mark.parametrize("time_input", ["s_t", "s_dt"])
def test_a_flow_matching_run_starts_the_map_as_an_euler_step(tmp_path, time_input):
    Trainer(_cfg("fm", time_input), tmp_path / "fm").fit()
    flow = load_run(tmp_path / "fm", ema="raw").fm
    tr = Trainer(_cfg("lsd", time_input, init=str(tmp_path / "fm"), init_ema="raw"), tmp_path / "lsd")
    x = torch.randn(256, 2)
    s, t = torch.rand(256) * 0.5, 0.5 + torch.rand(256) * 0.5
    with torch.no_grad():
        b_s = flow.v(x, s, s)
        assert torch.allclose(tr.fm.v(x, s, s), b_s, atol=1e-6)  # the diagonal is kept
        assert torch.allclose(tr.fm.X(x, s, t), x + (t - s)[:, None] * b_s, atol=1e-6)  # one Euler step
        # every EMA starts from the loaded weights, not from the random ones
        ema = tr.ema_flow_map("sigma_rel=0.05")
        assert torch.allclose(ema.v(x, s, s), b_s, atol=1e-6)
    meta = json.loads((tmp_path / "lsd" / "run.json").read_text())
    assert meta["init"]["method"] == "fm" and meta["init"]["ema"] == "raw" and "Euler" in meta["init"]["map_start"]
    tr.fit()  # and it trains on
    assert tr.step == 30


def test_a_flow_map_run_is_loaded_as_it_is(tmp_path):
    Trainer(_cfg("lsd"), tmp_path / "a").fit()
    src = load_run(tmp_path / "a", ema="raw").fm
    tr = Trainer(_cfg("psd-m", init=str(tmp_path / "a"), init_ema="raw"), tmp_path / "b")
    for (k, a), b in zip(src.state_dict().items(), tr.fm.state_dict().values()):
        assert torch.equal(a, b), k


def test_incompatible_runs_fail_in_one_line(tmp_path):
    Trainer(_cfg("fm"), tmp_path / "fm").fit()
    with pytest.raises(ConfigError, match="does not fit this network") as e:
        Trainer(_cfg("lsd", width=48, init=str(tmp_path / "fm")), tmp_path / "wide")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="time inputs"):
        Trainer(_cfg("lsd", time_input="s_dt", init=str(tmp_path / "fm")), tmp_path / "sdt")
    with pytest.raises(FileNotFoundError, match="not a flowmaps run folder"):
        Trainer(_cfg("lsd", init=str(tmp_path / "missing")), tmp_path / "x")
