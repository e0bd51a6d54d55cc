"""Velocities trained outside flowmaps: exported by the test itself (TorchScript and torch.export),
then used as LMD / EMD teachers and as an initialisation."""
import json

import pytest
import torch
from torch import nn

from flowmaps.config import ConfigError
from flowmaps.data.toy2d import gaussian_problem
from flowmaps.external import load_velocity
from flowmaps.run import load_run
from flowmaps.train.trainer import Trainer

from .helpers import small_config


class ExactVelocity(nn.Module):
    """b(x, t) of the 2-D Gaussian problem (sigma 1), as a module someone else might have trained."""

    def __init__(self):
        super().__init__()
        p = gaussian_problem(1.0)
        self.register_buffer("mean", p.mean)
        self.register_buffer("var", p.var)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t[:, None]
        std = torch.sqrt((1 - t) ** 2 + t**2 * self.var)
        dstd = (-(1 - t) + t * self.var) / std
        return self.mean + dstd / std * (x - t * self.mean)


@pytest.fixture(autouse=True)
def _torchscript_is_deprecated_in_torch_2_13():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _export(module, path, kind):
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(module), str(path))
    else:
        batch = torch.export.Dim("batch", min=2)
        ep = torch.export.export(module, (torch.randn(4, 2), torch.rand(4)), dynamic_shapes=({0: batch}, {0: batch}))
        torch.export.save(ep, str(path))
    return path


def _cfg(method="lmd", **over):
    return small_config("gaussian", method, {"kind": "mlp", "width": 32, "depth": 2},
                        {"steps": 10, "batch_size": 64, "progress": False, "log_every": 5, "ckpt_every": 10,
                         "ema_snapshots": 0}, **over)


@pytest.mark.parametrize("kind", ["torchscript", "export"])
@pytest.mark.parametrize("method", ["lmd", "emd"])
def test_an_exported_velocity_is_the_teacher(tmp_path, kind, method):
    path = _export(ExactVelocity(), tmp_path / f"b.{'pt' if kind == 'torchscript' else 'pt2'}", kind)
    tr = Trainer(_cfg(method, teacher={"velocity": str(path)}), tmp_path / "run")
    x, t = torch.randn(100, 2), torch.rand(100)
    assert torch.allclose(tr.objective.teacher.velocity(x, t), gaussian_problem(1.0).velocity(x, t), atol=1e-5)
    tr.fit()
    assert tr.step == 10


def test_bad_velocity_files_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_velocity(tmp_path / "none.pt", (2,))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="neither a torch.export"):
        load_velocity(junk, (2,))

    class Wrong(nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return x[:, :1] * t[:, None]

    wrong = _export(Wrong(), tmp_path / "wrong.pt", "torchscript")
    with pytest.raises(ConfigError, match="must return v of x's shape"):
        load_velocity(wrong, (2,))
    with pytest.raises(ConfigError, match="failed on x"):
        load_velocity(wrong, (3, 4, 4))
    with pytest.raises(ConfigError, match="set one teacher"):
        _cfg("lmd", teacher={"velocity": str(wrong), "run": str(tmp_path)})
    with pytest.raises(ConfigError, match="frozen flow map"):
        _cfg("pfmm", teacher={"velocity": str(wrong)})


def test_a_velocity_file_of_the_same_network_initialises_the_map(tmp_path):
    fm_cfg = _cfg("fm")
    fm_cfg.eval.ema = "raw"
    Trainer(fm_cfg, tmp_path / "fm").fit()
    flow = load_run(tmp_path / "fm", ema="raw").fm

    class AsVelocity(nn.Module):  # how an outside user would export their flow: b(x, t)
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t, t)

    path = _export(AsVelocity(flow.net), tmp_path / "flow.pt", "torchscript")
    tr = Trainer(_cfg("lsd", train={"init": str(path)}), tmp_path / "lsd")
    x, s, t = torch.randn(50, 2), torch.rand(50) * 0.5, 0.5 + torch.rand(50) * 0.5
    with torch.no_grad():
        assert torch.allclose(tr.fm.X(x, s, t), x + (t - s)[:, None] * flow.velocity(x, s), atol=1e-6)
    assert json.loads((tmp_path / "lsd" / "run.json").read_text())["init"]["method"] == "external velocity"
    with pytest.raises(ConfigError, match="does not hold this network's parameters"):
        Trainer(_cfg("lsd", train={"init": str(_export(ExactVelocity(), tmp_path / "b.pt", "torchscript"))}), tmp_path / "x")
