"""Known methods as special cases, checked against their own published definitions."""
import copy

import torch
from torch.func import jvp

from flowmaps import FlowMap
from flowmaps.losses import (
    consistency_residual,
    eulerian_residual,
    meanflow_residual,
    psd_residual,
    shortcut_residual,
    squared_norm,
)
from flowmaps.losses.times import sample_dyadic

from ..helpers import TinyMLP

B, D = 32, 2


def _setup():
    torch.manual_seed(1)
    fm = FlowMap(TinyMLP(dim=D, width=16).double())
    x0, x1 = torch.randn(B, D, dtype=torch.float64), torch.randn(B, D, dtype=torch.float64) + 2
    a, b = torch.rand(B, dtype=torch.float64), torch.rand(B, dtype=torch.float64)
    s, t = torch.minimum(a, b), torch.maximum(a, b)
    return fm, x0, x1, s, t


def _grads(fm, loss):
    fm.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in fm.parameters()])


def test_meanflow_matches_geng_et_al_definition():
    """MeanFlow (Geng et al. 2025): z_t = (1-t) x + t e runs data -> noise, u(z, r, t) is the
    average velocity, target u - sg(v - (t - r) du/dt) with du/dt = jvp along (v, 0, 1).
    Our time is 1 - theirs, our s is their t, our t their r, and our v is minus their u."""
    fm, x0, x1, s, t = _setup()
    x_s = (1 - s[:, None]) * x0 + s[:, None] * x1
    dI = x1 - x0
    ours = meanflow_residual(fm, x_s, s, t, dI)

    def u(z, r_g, t_g):
        return -fm.v(z, 1 - t_g, 1 - r_g)

    e, x = x0, x1
    t_g, r_g = 1 - s, 1 - t
    z = (1 - t_g[:, None]) * x + t_g[:, None] * e
    assert torch.allclose(z, x_s)
    v_g = e - x
    u_val, dudt = jvp(u, (z, r_g, t_g), (v_g, torch.zeros_like(r_g), torch.ones_like(t_g)))
    u_tgt = (v_g - (t_g - r_g)[:, None] * dudt).detach()
    theirs = u_val - u_tgt
    assert torch.allclose(ours.detach(), -theirs.detach(), atol=1e-12)
    g_ours = _grads(fm, squared_norm(ours).sum())
    u_val = u(z, r_g, t_g)
    g_theirs = _grads(fm, squared_norm(u_val - u_tgt).sum())
    assert torch.allclose(g_ours, g_theirs, rtol=1e-9, atol=1e-12)


def test_meanflow_is_the_eulerian_loss_with_the_conditional_velocity():
    fm, x0, x1, s, t = _setup()
    x_s = (1 - s[:, None]) * x0 + s[:, None] * x1
    dI = x1 - x0
    mf = meanflow_residual(fm, x_s, s, t, dI).detach()
    eul = eulerian_residual(fm, x_s, s, t, dI, "convex").detach()  # X-form d/ds X + grad X dI
    assert torch.allclose(mf, -eul, atol=1e-12)


def test_shortcut_matches_frans_et_al_definition():
    """Shortcut models (Frans et al. 2024): model(x, t, d) is the slope of a jump of size d;
    the target of a 2d jump is the mean of two d jumps, under stop-gradient."""
    fm, _, _, _, _ = _setup()
    frozen = copy.deepcopy(fm).requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    s, d = sample_dyadic(B, 64, g, dtype=torch.float64)
    assert bool(((s / d) - (s / d).round()).abs().max() < 1e-9)  # s is on the d-grid
    assert bool((s + 2 * d <= 1 + 1e-12).all())
    x = torch.randn(B, D, dtype=torch.float64)

    def model(net, xx, tt, dd):
        return net.v(xx, tt, tt + dd)

    s1 = model(frozen, x, s, d)
    s2 = model(frozen, x + d[:, None] * s1, s + d, d)
    target = (s1 + s2) / 2
    ref = model(fm, x, s, 2 * d) - target
    ours = shortcut_residual(fm, x, s, d)
    assert torch.allclose(ours.detach(), ref.detach(), atol=1e-12)
    assert torch.allclose(ours.detach(), psd_residual(fm, x, s, s + 2 * d, 0.5).detach(), atol=1e-12)
    assert torch.allclose(_grads(fm, squared_norm(ours).sum()), _grads(fm, squared_norm(ref).sum()))


def test_consistency_training_matches_its_definition_and_tends_to_eulerian():
    fm, x0, x1, s, t = _setup()
    ones = torch.ones_like(s)
    x_s = (1 - s[:, None]) * x0 + s[:, None] * x1
    delta = torch.full_like(s, 1e-2)
    x_next = (1 - (s + delta)[:, None]) * x0 + (s + delta)[:, None] * x1
    # Discrete CT (Song et al. 2023, eq 40 here): the one-time map f(x, s) = X_{s,1}(x) is pulled
    # towards sg f(x_{s+delta}, s+delta) on the same noise/data pair.
    ours = consistency_residual(fm, x_s, x_next, s, ones, delta)
    ref = (fm.X(x_s, s, ones) - fm.X(x_next, s + delta, ones).detach()) / delta[:, None]
    assert torch.allclose(ours.detach(), ref.detach(), atol=1e-12)
    # As delta -> 0 with x_next = x + delta b, the residual tends to minus the Eulerian residual (eq 35).
    b = x1 - x0
    eul = eulerian_residual(fm, x_s, s, t, b, "convex").detach()
    errs = []
    for h in (1e-2, 1e-3, 1e-4):
        dh = torch.full_like(s, h)
        r = consistency_residual(fm, x_s, x_s + h * b, s, t, dh).detach()
        errs.append(float((r + eul).abs().max()))
    assert errs[2] < errs[1] < errs[0] and errs[2] < 1e-3
