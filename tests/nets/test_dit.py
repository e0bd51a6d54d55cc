import copy

import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig, Teacher
from flowmaps.losses import METHODS
from flowmaps.nets.dit import DiT, DiTConfig, dit_parameter_count

from ..helpers import explicit_tangent_errors, gradients_through_the_jvp, map_jvp_report

IMAGE = DiTConfig(input_shape=(1, 8, 8), patch_size=2, hidden=32, depth=2, heads=2, learned_weight=True)
SEQUENCE = DiTConfig(input_shape=(16, 3), patch_size=4, hidden=32, depth=2, heads=4)


@pytest.mark.parametrize("name,published", [("S/2", 33), ("B/2", 130), ("L/2", 458), ("XL/2", 675)])
def test_parameter_counts_are_dits(name, published):
    """DiT's own layout (one time, 2C outputs, no QK-norm) on 32 x 32 x 4 latents with 1,000
    classes; DiT counts its frozen position table as parameters, flowmaps keeps it as a buffer."""
    cfg = DiTConfig.named(name, (4, 32, 32), num_classes=1000, two_times=False, qk_norm=False, learn_sigma=True)
    count = dit_parameter_count(cfg)
    assert round(count / 1e6) == published  # the paper's table: trainable parameters, in millions
    if name == "XL/2":  # DiT's training script prints every parameter, the frozen table included
        assert count + (32 // cfg.patch_size) ** 2 * cfg.hidden == 675_129_632
    flow = DiTConfig.named(name, (4, 32, 32), num_classes=1000)  # + emb(t - s) and QK-norm gains
    h, out = cfg.hidden, 2 * 2 * 4  # the output channels per token that learn_sigma adds
    second_time = (256 * h + h) + (h * h + h)
    qk_gains = 2 * cfg.depth * (h // cfg.heads)
    assert dit_parameter_count(flow) - dit_parameter_count(cfg) == second_time + qk_gains - (h * out + out)


def _randomised(cfg, dtype=torch.float64):
    torch.manual_seed(0)
    net = DiT(cfg).to(dtype)
    with torch.no_grad():  # the zero-initialised modulations and output would hide most of the map
        for name, p in net.named_parameters():
            if "ada" in name or name.startswith("out."):
                p.normal_(0, 0.05)
    return net


@pytest.mark.parametrize("cfg", [IMAGE, SEQUENCE], ids=["image", "sequence"])
def test_identity_at_initialisation(cfg):
    fm = FlowMap(DiT(cfg), time_input="s_dt")
    x = torch.randn(3, *cfg.input_shape)
    s, t = torch.tensor([0.0, 0.2, 0.5]), torch.tensor([1.0, 0.7, 0.9])
    assert torch.equal(fm.X(x, s, t), x)
    net = _randomised(cfg, torch.float32)
    assert net.unpatchify(net.patchify(x)).equal(x)


@pytest.mark.parametrize("cfg", [IMAGE, SEQUENCE], ids=["image", "sequence"])
@pytest.mark.parametrize("wrt", ["t", "s", "x"])
def test_jvp_matches_finite_differences(cfg, wrt):
    fm = FlowMap(_randomised(cfg), time_input="s_dt")
    x = torch.randn(2, *cfg.input_shape, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.95], dtype=torch.float64)
    report = map_jvp_report(fm, x, s, t, wrt)
    assert report.relative_error["func"] < 1e-7 and report.relative_error["forward_ad"] < 1e-7, report


def test_gradient_through_the_jvp_matches_across_backends():
    fm = FlowMap(_randomised(IMAGE), time_input="s_dt")
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.95], dtype=torch.float64)
    grads = gradients_through_the_jvp(fm, x, s, t)
    assert torch.allclose(grads["func"], grads["forward_ad"], rtol=1e-9, atol=1e-12)
    assert torch.allclose(grads["func"], grads["fd"], rtol=1e-5, atol=1e-8)


GUIDED = DiTConfig(input_shape=(1, 8, 8), patch_size=2, hidden=32, depth=1, heads=2, num_classes=3, guidance=True)
PLAIN = DiTConfig(input_shape=(1, 8, 8), patch_size=2, hidden=32, depth=2, heads=2, qk_norm=False, two_times=False)


@pytest.mark.parametrize("cfg", [IMAGE, SEQUENCE, GUIDED, PLAIN], ids=["image", "sequence", "guided", "no-qk-norm"])
def test_explicit_tangents_match_torch_func_and_finite_differences(cfg):
    net = _randomised(cfg, torch.float32)
    fm, fm64 = FlowMap(net, time_input="s_dt"), FlowMap(copy.deepcopy(net).double(), time_input="s_dt")
    x = torch.randn(3, *cfg.input_shape)
    s, t = torch.tensor([0.1, 0.4, 0.0]), torch.tensor([0.6, 0.95, 0.3])
    cond = {"y": torch.tensor([0, 2, 3]), "alpha": torch.tensor([1.0, 2.5, 0.0])} if cfg.guidance else {}
    for name, (against_func, against_fd) in explicit_tangent_errors(fm, fm64, x, s, t, cond).items():
        assert against_func < 1e-5 and against_fd < 1e-7, (name, against_func, against_fd)


def test_gradient_through_the_explicit_tangent_equals_torch_func():
    fm = FlowMap(_randomised(IMAGE), time_input="s_dt")
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.95], dtype=torch.float64)
    grads = gradients_through_the_jvp(fm, x, s, t, backends=("func", "explicit"))
    assert torch.allclose(grads["func"], grads["explicit"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["lsd", "esd", "psd-u"])
def test_bfloat16_training_step(method):
    fm = FlowMap(_randomised(IMAGE, torch.float32), time_input="s_dt")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = Objective(ObjectiveConfig(method=method, jvp_backend="func"), sigma=0.5)(fm, torch.randn(8, 1, 8, 8))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in fm.parameters() if p.grad is not None)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains(method):
    torch.manual_seed(0)
    fm = FlowMap(DiT(SEQUENCE), time_input="s_dt")
    teacher = Teacher.from_flow_map(FlowMap(_randomised(SEQUENCE, torch.float32), time_input="s_dt"))
    out = Objective(ObjectiveConfig(method=method), sigma=0.5, teacher=teacher)(
        fm, torch.randn(16, 16, 3), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in fm.parameters())


def test_labels_guidance_and_errors():
    cfg = DiTConfig(input_shape=(1, 8, 8), patch_size=2, hidden=32, depth=1, heads=2, num_classes=3, guidance=True)
    net = _randomised(cfg, torch.float32)
    x, s, dt = torch.randn(4, 1, 8, 8), torch.rand(4), torch.rand(4) * 0.5
    y = torch.tensor([0, 1, 2, 3])  # 3: the null label
    a = net(x, s, dt, y, torch.full((4,), 2.0))
    assert not torch.allclose(a, net(x, s, dt, y, torch.ones(4)))
    assert not torch.allclose(a, net(x, s, dt, torch.tensor([3, 3, 3, 3]), torch.full((4,), 2.0)))
    with pytest.raises(ValueError, match="pass labels y"):
        net(x, s, dt)
    with pytest.raises(ValueError, match="does not divide"):
        DiT(DiTConfig(input_shape=(1, 9, 9), patch_size=2))
    with pytest.raises(ValueError, match="unknown DiT size"):
        DiTConfig.named("M/2", (1, 8, 8))
