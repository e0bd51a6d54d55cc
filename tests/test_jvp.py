import copy

import pytest
import torch

from flowmaps import FlowMap
from flowmaps.jvp import JVP_BACKENDS, check_jvp, jvp

from .helpers import TinyConvAttn, TinyMLP


def _cases():
    mlp = FlowMap(TinyMLP(dim=3).double())
    conv = FlowMap(TinyConvAttn().double(), time_input="s_dt")
    conv_explicit = FlowMap(TinyConvAttn(sdpa=False).double(), time_input="s_dt")
    return [
        ("mlp", mlp, torch.randn(6, 3, dtype=torch.float64)),
        ("conv-sdpa", conv, torch.randn(3, 1, 6, 6, dtype=torch.float64)),
        ("conv-explicit-attention", conv_explicit, torch.randn(3, 1, 6, 6, dtype=torch.float64)),
    ]


@pytest.mark.parametrize("name,fm,x", _cases())
@pytest.mark.parametrize("wrt", ["t", "s", "x"])
def test_backends_agree_with_finite_differences(name, fm, x, wrt):
    B = x.shape[0]
    s = torch.rand(B, dtype=torch.float64) * 0.5
    t = s + torch.rand(B, dtype=torch.float64) * 0.5
    w = torch.randn_like(x)
    fns = {
        "t": (lambda tt: fm.X(x, s, tt), (t,), (torch.ones_like(t),)),
        "s": (lambda ss: fm.X(x, ss, t), (s,), (torch.ones_like(s),)),
        "x": (lambda xx: fm.X(xx, s, t), (x,), (w,)),
    }
    fn, primals, tangents = fns[wrt]
    report = check_jvp(fn, primals, tangents)
    assert set(report.relative_error) == set(JVP_BACKENDS)
    assert report.relative_error["func"] < 1e-8, report
    assert report.relative_error["forward_ad"] < 1e-8, report
    assert report.relative_error["fd"] < 1e-6, report
    assert "func" in str(report)


@pytest.mark.parametrize("backend", ["forward_ad", "fd"])
def test_gradient_through_jvp_matches_func(backend):
    """Backprop through the JVP agrees across backends (explicit attention: torch.softmax's
    forward-AD rule breaks backward under forward_ad, pytorch#162350)."""
    torch.manual_seed(0)
    fm = FlowMap(TinyConvAttn(sdpa=False).double())
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.3], dtype=torch.float64), torch.tensor([0.6, 0.9], dtype=torch.float64)

    def grads(bk):
        fm.zero_grad()
        _, dX = fm.X_and_dt(x, s, t, backend=bk)
        dX.square().sum().backward()
        return [p.grad.clone() for p in fm.parameters()]

    ref, other = grads("func"), grads(backend)
    tol = 1e-6 if backend == "fd" else 1e-10
    for a, b in zip(ref, other):
        assert torch.allclose(a, b, atol=tol, rtol=tol)


def test_jvp_validates_inputs():
    f = lambda a: a * 2  # noqa: E731
    with pytest.raises(ValueError, match="shape"):
        jvp(f, (torch.ones(3),), (torch.ones(2),))
    with pytest.raises(ValueError, match="backend"):
        jvp(f, (torch.ones(3),), (torch.ones(3),), backend="nope")  # type: ignore[arg-type]


def test_float32_network_checked_in_float64():
    fm32 = FlowMap(TinyMLP(dim=2))
    fm64 = copy.deepcopy(fm32).double()
    x, s, t = torch.randn(4, 2), torch.rand(4) * 0.5, torch.rand(4) * 0.5 + 0.5
    report = check_jvp(lambda tt: fm64.X(x.double(), s.double(), tt), (t,), (torch.ones_like(t),))
    assert report.worst() < 1e-6
    _, d32 = fm32.X_and_dt(x, s, t)
    _, d64 = fm64.X_and_dt(x.double(), s.double(), t.double())
    assert torch.allclose(d32.double(), d64, atol=1e-4)


def test_func_backend_backprops_through_sdpa():
    """The default backend differentiates through F.scaled_dot_product_attention (math path)."""
    fm = FlowMap(TinyConvAttn(sdpa=True).double())
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    s, t = torch.tensor([0.1, 0.3], dtype=torch.float64), torch.tensor([0.6, 0.9], dtype=torch.float64)
    _, dX = fm.X_and_dt(x, s, t, backend="func")
    dX.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fm.parameters())
