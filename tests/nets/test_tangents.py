"""Explicit tangents: every rule against torch.func, and the MLP's tangent pass against torch.func
(float32, 1e-5 relative) and float64 central differences, for every direction and variant."""
import pytest
import torch

from flowmaps import FlowMap
from flowmaps.jvp import relative_error
from flowmaps.nets import MLP
from flowmaps.nets import tangents as T

from ..helpers import TinyMLP, explicit_tangent_errors


@pytest.mark.parametrize("rule,fn", [
    (T.silu_jvp, torch.nn.functional.silu),
    (T.gelu_jvp, torch.nn.functional.gelu),
    (T.gelu_tanh_jvp, lambda h: torch.nn.functional.gelu(h, approximate="tanh")),
])
def test_activation_rules_match_torch_func(rule, fn):
    g = torch.Generator().manual_seed(0)
    h, dh = 3 * torch.randn(64, 7, generator=g, dtype=torch.float64), torch.randn(64, 7, generator=g, dtype=torch.float64)
    y, dy = rule(h, dh)
    ref_y, ref_dy = torch.func.jvp(fn, (h,), (dh,))
    assert relative_error(y, ref_y) < 1e-14
    assert relative_error(dy, ref_dy) < 1e-12
    assert rule(h, None)[1] is None


def test_linear_and_cat_keep_zero_tangents_structural():
    w, b = torch.randn(5, 3), torch.randn(5)
    h = torch.randn(4, 3)
    out, d = T.linear_jvp(h, None, w, b)
    assert d is None and torch.allclose(out, h @ w.T + b)
    dh = torch.randn(4, 3)
    out, d = T.linear_jvp(h, dh, w, b)
    assert torch.allclose(out, h @ w.T + b, atol=1e-6) and torch.allclose(d, dh @ w.T, atol=1e-6)
    p, d = T.cat_jvp([(h, None), (h, None)], 1)
    assert d is None and p.shape == (4, 6)
    _, d = T.cat_jvp([(h, None), (h, dh)], 1)
    assert torch.equal(d[:, :3], torch.zeros(4, 3)) and torch.equal(d[:, 3:], dh)
    assert T.add_tangents(None, None) is None


NETS = {
    "gelu": dict(activation="gelu"),
    "silu": dict(activation="silu"),
    "gelu_tanh": dict(activation="gelu_tanh"),
    "fourier": dict(activation="silu", time_features=3, x_features=2),
    "guided": dict(activation="gelu", num_classes=3, guidance=True),
}


def _flow_map(kind, time_input, dtype=torch.float32):
    torch.manual_seed(0)
    return FlowMap(MLP(dim=3, width=32, depth=2, sigma=0.7, **NETS[kind]), time_input).to(dtype)


def _cond(kind, B):
    if kind != "guided":
        return {}
    return {"y": torch.tensor([0, 1, 2, 3, 1][:B]), "alpha": torch.linspace(0.0, 3.0, B)}


@pytest.mark.parametrize("kind", list(NETS))
@pytest.mark.parametrize("time_input", ["s_t", "s_dt"])
def test_explicit_tangents_match_torch_func_and_finite_differences(kind, time_input):
    g = torch.Generator().manual_seed(1)
    B = 5
    x = torch.randn(B, 3, generator=g)
    s = torch.rand(B, generator=g) * 0.5
    t = s + 0.4 * torch.rand(B, generator=g)
    errors = explicit_tangent_errors(_flow_map(kind, time_input), _flow_map(kind, time_input, torch.float64),
                                     x, s, t, _cond(kind, B))
    for name, (against_func, against_fd) in errors.items():
        assert against_func < 1e-5 and against_fd < 1e-7, (name, against_func, against_fd)


def test_auto_picks_explicit_for_the_mlp_and_refuses_it_elsewhere():
    fm = _flow_map("silu", "s_t")
    assert fm.jvp_backend("auto") == "explicit"
    other = FlowMap(TinyMLP(dim=3))
    assert other.jvp_backend("auto") == "func"
    with torch.no_grad():
        assert other.jvp_backend("auto") == "forward_ad"
    with pytest.raises(ValueError, match="explicit tangents"):
        other.X_and_dt(torch.randn(2, 3), torch.zeros(2), torch.ones(2), backend="explicit")


def test_bfloat16_explicit_lsd_step_is_finite():
    from flowmaps import Objective, ObjectiveConfig

    fm = _flow_map("silu", "s_t")
    obj = Objective(ObjectiveConfig(method="lsd", jvp_backend="explicit"), sigma=0.7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = obj(fm, torch.randn(64, 3), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in fm.parameters() if p.grad is not None)
