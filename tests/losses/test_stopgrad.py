"""Each loss's gradient equals the gradient of the paper's expression with the teacher frozen.

References are written by hand: time derivatives and spatial Jacobians by double backward,
the teacher as a frozen deep copy of the network.
"""
import copy

import pytest
import torch

from flowmaps import FlowMap
from flowmaps.losses import (
    esd_residual,
    lmd_residual,
    lsd_residual,
    lsd_semigradient_residual,
    psd_residual,
    squared_norm,
)

from ..helpers import TinyMLP

B, D = 16, 2


@pytest.fixture
def setup():
    torch.manual_seed(0)
    fm = FlowMap(TinyMLP(dim=D, width=16).double())
    frozen = copy.deepcopy(fm).requires_grad_(False)
    x = torch.randn(B, D, dtype=torch.float64)
    s = torch.rand(B, dtype=torch.float64) * 0.5
    t = s + torch.rand(B, dtype=torch.float64) * 0.5
    return fm, frozen, x, s, t


def _grads(fm, loss):
    fm.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in fm.parameters()])


def _d_dtime(fn, tau):
    """Per-sample d/dtau of fn(tau) [B, D] with graph kept (samples are independent)."""
    tau = tau.clone().requires_grad_(True)
    out = fn(tau)
    cols = [torch.autograd.grad(out[:, d].sum(), tau, create_graph=True)[0] for d in range(out.shape[1])]
    return out, torch.stack(cols, dim=1)


def _jac_vec(fn, x, w, create_graph):
    """Per-sample grad_x fn(x) w, [B, D]."""
    x = x.clone().requires_grad_(True)
    out = fn(x)
    rows = [
        torch.autograd.grad(out[:, d].sum(), x, create_graph=create_graph, retain_graph=True)[0]
        for d in range(out.shape[1])
    ]
    return torch.stack([(r * w).sum(1) for r in rows], dim=1)


def _check(fm, lib_loss, ref_loss):
    g_lib = _grads(fm, lib_loss)
    g_ref = _grads(fm, ref_loss)
    assert torch.allclose(lib_loss.detach(), ref_loss.detach(), rtol=1e-10)
    assert torch.allclose(g_lib, g_ref, rtol=1e-8, atol=1e-12)
    assert g_ref.abs().sum() > 0


def test_lsd_gradient_flows_only_through_dt_X(setup):
    fm, frozen, x, s, t = setup
    X, dX = _d_dtime(lambda tt: fm.X(x, s, tt), t)
    ref = squared_norm(dX - frozen.velocity(X.detach(), t)).sum()
    _check(fm, squared_norm(lsd_residual(fm, x, s, t)).sum(), ref)


def test_lsd_semigradient_is_a_regression_on_v(setup):
    fm, frozen, x, s, t = setup
    v_frozen, dv = _d_dtime(lambda tt: frozen.v(x, s, tt), t)
    X = x + (t - s)[:, None] * v_frozen
    target = (frozen.velocity(X, t) - (t - s)[:, None] * dv).detach()
    ref = squared_norm(fm.v(x, s, t) - target).sum()
    _check(fm, squared_norm(lsd_semigradient_residual(fm, x, s, t)).sum(), ref)


@pytest.mark.parametrize("variant", ["full", "convex", "none"])
def test_esd_variants(setup, variant):
    fm, frozen, x, s, t = setup
    _, ds = _d_dtime(lambda ss: fm.X(x, ss, t), s)
    if variant == "none":
        b = fm.velocity(x, s)
    else:
        b = frozen.velocity(x, s)
    if variant == "full":
        adv = _jac_vec(lambda xx: frozen.X(xx, s, t), x, b, create_graph=False).detach()
    else:
        adv = _jac_vec(lambda xx: fm.X(xx, s, t), x, b, create_graph=True)
    ref = squared_norm(ds + adv).sum()
    _check(fm, squared_norm(esd_residual(fm, x, s, t, variant)).sum(), ref)


def test_esd_semigradient_is_a_regression_on_v(setup):
    fm, frozen, x, s, t = setup
    b = frozen.velocity(x, s)
    _, dsv = _d_dtime(lambda ss: frozen.v(x, ss, t), s)
    adv = _jac_vec(lambda xx: frozen.v(xx, s, t), x, b, create_graph=False)
    target = (b + (t - s)[:, None] * (dsv + adv)).detach()
    ref = squared_norm(fm.v(x, s, t) - target).sum()
    _check(fm, squared_norm(esd_residual(fm, x, s, t, "semigradient")).sum(), ref)


@pytest.mark.parametrize("gamma", [0.5, "uniform"])
def test_psd_teacher_is_frozen(setup, gamma):
    fm, frozen, x, s, t = setup
    g = torch.rand(B, dtype=torch.float64) if gamma == "uniform" else 0.5
    gc = g[:, None] if isinstance(g, torch.Tensor) else g
    u = g * s + (1 - g) * t
    v_su = frozen.v(x, s, u)
    target = (1 - gc) * v_su + gc * frozen.v(x + (u - s)[:, None] * v_su, u, t)
    ref = squared_norm(fm.v(x, s, t) - target).sum()
    _check(fm, squared_norm(psd_residual(fm, x, s, t, g)).sum(), ref)


def test_lmd_teacher_receives_no_gradient(setup):
    fm, _, x, s, t = setup
    teacher = FlowMap(TinyMLP(dim=D, width=16).double())
    loss = squared_norm(lmd_residual(fm, teacher.velocity, x, s, t)).sum()
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in fm.parameters())


def test_self_teacher_uses_current_weights(setup):
    """After a weight change the LSD teacher is the changed network (no stale or EMA copy)."""
    fm, stale, x, s, t = setup
    with torch.no_grad():
        for p in fm.parameters():
            p.mul_(1.1)
    current = copy.deepcopy(fm).requires_grad_(False)
    X, dX = _d_dtime(lambda tt: fm.X(x, s, tt), t)
    lib = lsd_residual(fm, x, s, t).detach()
    assert torch.allclose(lib, (dX - current.velocity(X.detach(), t)).detach(), atol=1e-12)
    assert not torch.allclose(lib, (dX - stale.velocity(X.detach(), t)).detach(), atol=1e-6)
