import copy

import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.nets.edm2 import PRESETS, EDM2Config, EDM2UNet
from flowmaps.nets.mp import MPConv

from ..helpers import explicit_tangent_errors, gradients_through_the_jvp, map_jvp_report

SMALL = EDM2Config(img_resolution=8, img_channels=1, model_channels=16, channel_mult=[1, 2], num_blocks=1,
                   attn_resolutions=[4], channels_per_head=16, dropout=0.0)


@pytest.mark.parametrize("name,count", [("cifar10", 54_673_314), ("64x64", 124_264_485)])
def test_parameter_counts_are_the_papers(name, count):
    with torch.device("meta"):  # shapes only: no memory, no random init
        net = EDM2UNet(PRESETS[name])
    assert sum(p.numel() for p in net.parameters()) == count


def _randomised(cfg=SMALL, **kw):
    torch.manual_seed(0)
    net = EDM2UNet(cfg, **kw)
    with torch.no_grad():  # leave the zero-initialised gains so the test sees a non-trivial map
        net.out_gain.fill_(0.5)
        for m in net.modules():
            if hasattr(m, "emb_gain"):
                m.emb_gain.fill_(0.3)
    return net


def test_identity_at_initialisation():
    fm = FlowMap(EDM2UNet(SMALL), time_input="s_dt")
    x = torch.randn(3, 1, 8, 8)
    s, t = torch.tensor([0.0, 0.2, 0.5]), torch.tensor([1.0, 0.7, 0.9])
    assert torch.equal(fm.X(x, s, t), x)
    assert fm.log_weight(s, t).shape == (3,)


@pytest.mark.parametrize("wrt", ["t", "s", "x"])
def test_forward_ad_jvp_matches_finite_differences(wrt):
    fm = FlowMap(_randomised().double(), time_input="s_dt")
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.95], dtype=torch.float64)
    report = map_jvp_report(fm, x, s, t, wrt)
    assert report.relative_error["func"] < 1e-7 and report.relative_error["forward_ad"] < 1e-7, report


def test_gradient_through_the_jvp_matches_across_backends():
    """The lean conv JVP rule (one convolution) gives the same LSD gradient as finite differences."""
    fm = FlowMap(_randomised().double(), time_input="s_dt")
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.95], dtype=torch.float64)
    grads = gradients_through_the_jvp(fm, x, s, t)
    assert torch.allclose(grads["func"], grads["forward_ad"], rtol=1e-9, atol=1e-12)
    assert torch.allclose(grads["func"], grads["fd"], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("variant", ["plain", "guided", "dropout"])
def test_explicit_tangents_match_torch_func_and_finite_differences(variant):
    extra = {"guided": {"num_classes": 3, "guidance": True}, "dropout": {"dropout": 0.2}}.get(variant, {})
    cfg = EDM2Config(**{**SMALL.__dict__, **extra})
    net = _randomised(cfg).eval()  # dropout off: the references evaluate the network several times
    fm, fm64 = FlowMap(net, time_input="s_dt"), FlowMap(copy.deepcopy(net).double(), time_input="s_dt")
    x = torch.randn(3, 1, 8, 8)
    s, t = torch.tensor([0.1, 0.4, 0.0]), torch.tensor([0.6, 0.95, 0.3])
    cond = {"y": torch.tensor([0, 2, 3]), "alpha": torch.tensor([1.0, 2.5, 0.0])} if variant == "guided" else {}
    for name, (against_func, against_fd) in explicit_tangent_errors(fm, fm64, x, s, t, cond).items():
        assert against_func < 1e-5 and against_fd < 1e-7, (name, against_func, against_fd)


def test_explicit_tangent_shares_the_dropout_mask():
    net = _randomised(EDM2Config(**{**SMALL.__dict__, "dropout": 0.5})).train()
    x, s, dt = torch.randn(2, 1, 8, 8), torch.tensor([0.1, 0.3]), torch.tensor([0.5, 0.2])
    torch.manual_seed(3)
    v, dv = net.forward_jvp(x, s, dt, None, None, torch.ones(2))
    torch.manual_seed(3)
    ref_v, ref_dv = torch.func.jvp(lambda d: net(x, s, d), (dt,), (torch.ones(2),))
    assert torch.allclose(v, ref_v, atol=1e-6) and torch.allclose(dv, ref_dv, rtol=1e-4, atol=1e-6)


def test_gradient_through_the_explicit_tangent_equals_torch_func():
    fm = FlowMap(_randomised().double(), time_input="s_dt")
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.95], dtype=torch.float64)
    grads = gradients_through_the_jvp(fm, x, s, t, backends=("func", "explicit"))
    assert torch.allclose(grads["func"], grads["explicit"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["lsd", "esd", "psd-u"])
def test_bfloat16_training_step(method):
    net = _randomised(compute_dtype=torch.bfloat16)
    fm = FlowMap(net, time_input="s_dt")
    out = Objective(ObjectiveConfig(method=method), sigma=0.5)(fm, torch.randn(8, 1, 8, 8))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in fm.parameters() if p.grad is not None)
    ref = FlowMap(copy.deepcopy(net), time_input="s_dt")
    ref.net.compute_dtype = None
    x, s, t = torch.randn(4, 1, 8, 8), torch.rand(4) * 0.5, torch.rand(4) * 0.5 + 0.5
    assert torch.allclose(fm.X(x, s, t), ref.X(x, s, t), atol=0.1)  # bf16 tracks fp32 loosely


def test_class_conditioning_with_null_label():
    cfg = EDM2Config(**{**SMALL.__dict__, "num_classes": 3})
    net = _randomised(cfg)
    x, s, dt = torch.randn(4, 1, 8, 8), torch.rand(4), torch.rand(4)
    a = net(x, s, dt, y=torch.tensor([0, 1, 2, 3]))
    b = net(x, s, dt, y=torch.tensor([1, 1, 2, 3]))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1:], b[1:])
    with pytest.raises(ValueError, match="labels"):
        net(x, s, dt)


def test_forced_weight_normalisation():
    net = EDM2UNet(SMALL)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, MPConv):
                m.weight.mul_(3.0)
    net.force_normalize()
    for m in net.modules():
        if isinstance(m, MPConv):
            rows = m.weight.flatten(1).norm(dim=1)
            fan_in = m.weight[0].numel()
            assert torch.allclose(rows, torch.full_like(rows, fan_in**0.5), rtol=1e-3)


def test_dropout_and_shared_weights_keep_gradients():
    cfg = EDM2Config(**{**SMALL.__dict__, "dropout": 0.2})
    fm = FlowMap(_randomised(cfg), time_input="s_dt")
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in fm.modules())
    fm.eval()
    x, s, t = torch.randn(4, 1, 8, 8), torch.rand(4) * 0.5, torch.rand(4) * 0.5 + 0.5
    fm.zero_grad()
    (fm.X(x, s, t).square().sum() + fm.X(x, t, t).square().sum()).backward()
    plain = torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None])
    fm.zero_grad()
    with fm.shared_weights():
        (fm.X(x, s, t).square().sum() + fm.X(x, t, t).square().sum()).backward()
    shared = torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None])
    assert torch.allclose(plain, shared, rtol=1e-5, atol=1e-7)


def test_shared_weights_after_a_gradient_free_call_still_give_gradients():
    """A teacher call under no_grad that comes first in a step must not leave a graph-less
    normalised weight for the student's call (the guided diagonal target does exactly that)."""
    fm = FlowMap(_randomised(SMALL), time_input="s_dt")
    x, s, t = torch.randn(4, 1, 8, 8), torch.rand(4) * 0.5, torch.rand(4) * 0.5 + 0.5
    fm.zero_grad()
    fm.X(x, s, t).square().sum().backward()
    plain = torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None])
    fm.zero_grad()
    with fm.shared_weights():
        with torch.no_grad():
            fm.X(x, t, t)
        fm.X(x, s, t).square().sum().backward()
    shared = torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None])
    assert plain.abs().sum() > 0 and torch.allclose(plain, shared, rtol=1e-5, atol=1e-7)
