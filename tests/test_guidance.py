"""Class conditioning and guidance: label dropout, the guidance-scale draw, the networks' label
and alpha inputs, and guided sampling (the map's input vs classifier-free guidance for ODEs)."""
import pytest
import torch

from flowmaps import FlowMap, sample
from flowmaps.guidance import class_condition, drop_labels, guided_fm_correction, null_label, sample_guidance
from flowmaps.nets import MLP
from flowmaps.nets.edm2 import EDM2Config, EDM2UNet


def test_label_dropout_rate_and_null_label():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (20000,), generator=g)
    d = drop_labels(y, 0.2, 10, g)
    dropped = d == 10
    assert abs(float(dropped.float().mean()) - 0.2) < 0.01
    assert torch.equal(d[~dropped], y[~dropped])
    assert drop_labels(y, 0.0, 10, g) is y


@pytest.mark.parametrize("kind", ["uniform", "log_uniform"])
def test_guidance_scales_cover_the_range(kind):
    a = sample_guidance(50000, 4.0, kind, torch.Generator().manual_seed(0))
    assert float(a.min()) >= 0 and float(a.max()) <= 4.0 and float(a.max()) > 3.9
    median = float(a.median())
    assert abs(median - 2.0) < 0.05 if kind == "uniform" else median < 1.5  # log-uniform favours small scales
    with pytest.raises(ValueError, match="uniform"):
        sample_guidance(4, 2.0, "normal")


def test_mlp_labels_start_ignored_then_matter_and_alpha_is_an_input():
    torch.manual_seed(0)
    net = MLP(dim=2, width=32, depth=2, num_classes=3, guidance=True)
    x, s, t = torch.randn(8, 2), torch.rand(8), torch.rand(8)
    a, b = net(x, s, t, y=torch.zeros(8, dtype=torch.long)), net(x, s, t, y=torch.full((8,), 3))
    assert torch.equal(a, b)  # zero-initialised label embedding
    torch.nn.init.normal_(net.label_embedding.weight)
    assert not torch.allclose(net(x, s, t, y=torch.zeros(8, dtype=torch.long)), net(x, s, t, y=torch.full((8,), 3)))
    y = torch.ones(8, dtype=torch.long)
    assert torch.equal(net(x, s, t, y=y), net(x, s, t, y=y, alpha=torch.ones(8)))  # alpha defaults to 1
    assert not torch.allclose(net(x, s, t, y=y, alpha=torch.full((8,), 3.0)), net(x, s, t, y=y))
    with pytest.raises(ValueError, match="pass labels"):
        net(x, s, t)
    with pytest.raises(ValueError, match="num_classes"):
        MLP(dim=2, guidance=True)


def test_edm2_guidance_embedding():
    torch.manual_seed(0)
    cfg = EDM2Config(img_resolution=8, img_channels=1, model_channels=16, channel_mult=[1, 2], num_blocks=1,
                     attn_resolutions=[4], dropout=0.0, num_classes=4, guidance=True, channels_per_head=16)
    net = EDM2UNet(cfg)
    with torch.no_grad():  # EDM2 starts with zero output and embedding gains
        for name, p in net.named_parameters():
            if name.endswith("out_gain") or name.endswith("emb_gain"):
                p.fill_(1.0)
    x, s, dt, y = torch.randn(2, 1, 8, 8), torch.rand(2), torch.rand(2), torch.tensor([0, 4])
    assert net(x, s, dt, y).shape == x.shape
    assert torch.equal(net(x, s, dt, y), net(x, s, dt, y, torch.ones(2)))
    assert not torch.allclose(net(x, s, dt, y, torch.full((2,), 3.0)), net(x, s, dt, y))
    assert null_label(FlowMap(net, "s_dt")) == 4


class _Counting(torch.nn.Module):
    """v = the label as a number (null label -> 10) times alpha; counts its calls."""

    num_classes, guidance = 3, True

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, a, b, y=None, alpha=None):
        self.calls += 1
        val = torch.where(y == 3, torch.full_like(y, 10), y).to(x.dtype)
        return (val * (alpha if alpha is not None else 1.0))[:, None].expand_as(x) + self.p


def test_guided_sampling_map_input_and_ode_cfg():
    net = _Counting()
    fm = FlowMap(net)
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 2, 3])
    out = sample(fm, x, 2, "map", labels=y, guidance=2.0)  # one call per step, alpha = 2 fed in
    assert net.calls == 2 and torch.allclose(out[:, 0], torch.tensor([0.0, 2.0, 4.0, 20.0]))
    net.calls = 0
    out = sample(fm, x, 2, "euler", labels=y, guidance=2.0)  # CFG: v(null) + 2 (v(y) - v(null)), 2 calls per step
    assert net.calls == 2  # one doubled batch per step
    assert torch.allclose(out[:, 0], 10 + 2 * (torch.tensor([0.0, 1.0, 2.0, 10.0]) - 10))
    with pytest.raises(ValueError, match="labels"):
        sample(fm, x, 1, "map", guidance=2.0)
    with pytest.raises(ValueError, match="0..2"):
        class_condition(fm, torch.tensor([5]))
    plain = FlowMap(MLP(dim=2, width=8, depth=1, num_classes=3))
    with pytest.raises(ValueError, match="without the guidance input"):
        class_condition(plain, torch.tensor([1]), 2.0)
    assert set(class_condition(plain, torch.tensor([1]))) == {"y"}


@pytest.mark.parametrize("method", ["lsd", "esd", "psd-u", "psd-m"])
def test_a_guided_step_runs_under_bfloat16_autocast(method):
    from flowmaps import Objective, ObjectiveConfig

    torch.manual_seed(0)
    fm = FlowMap(MLP(dim=2, width=32, depth=2, num_classes=3, guidance=True))
    obj = Objective(ObjectiveConfig(method=method, label_dropout=0.2, guidance_max=3.0), sigma=1.0, num_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = obj(fm, torch.randn(64, 2), {"y": torch.randint(0, 3, (64,))}, generator=torch.Generator().manual_seed(0))
    out.loss.float().backward()
    assert torch.isfinite(out.loss.detach()) and all(torch.isfinite(p.grad).all() for p in fm.parameters())


def test_the_guided_target_is_the_same_masked_inside_a_compiled_graph(monkeypatch):
    """Inside a compiled graph the guided flow-matching correction computes every row and masks
    the ones at alpha = 1 or with the null label, instead of selecting rows: the same values."""
    torch.manual_seed(0)
    net = MLP(dim=2, width=32, depth=2, num_classes=3, guidance=True)
    torch.nn.init.normal_(net.label_embedding.weight)
    fm = FlowMap(net, "s_t")
    x, t = torch.randn(16, 2), torch.rand(16)
    y = torch.tensor([0, 1, 2, 3] * 4)
    alpha = torch.tensor([1.0, 2.5, 0.5, 3.0] * 2 + [1.0] * 4 + [0.0, 4.0, 1.0, 2.0])
    selected = guided_fm_correction(fm, x, t, y, alpha, 3)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    masked = guided_fm_correction(fm, x, t, y, alpha, 3)
    torch.testing.assert_close(masked, selected)
    assert selected.abs().sum() > 0 and torch.equal(masked[(alpha == 1) | (y == 3)], torch.zeros_like(x)[(alpha == 1) | (y == 3)])
