"""The guided losses (App. F.5, eqs 100-102) on a labelled Gaussian mixture whose conditional,
unconditional and guided velocities are closed-form and whose guided map is an accurate RK4 solve.

At the exact guided map every guided residual vanishes; a map that follows the wrong guidance
scale leaves them large. Training a small guided MLP brings its one-step map close to the exact
guided map at several scales (alpha = 0: unconditional, 1: conditional, 2: guided).
"""
import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.data.toy2d import gmm_problem
from flowmaps.exact import ClassMixtureProblem, ExactGuidedNet
from flowmaps.guidance import guided_velocity
from flowmaps.losses.objective import OffDiagonalBatch

GUIDED = ["lsd", "esd", "psd-u", "psd-m"]


def _problem() -> ClassMixtureProblem:
    p = gmm_problem(1.0)
    p.weights, p.means, p.vars = p.weights.double(), p.means.double(), p.vars.double()
    return ClassMixtureProblem(p, torch.arange(3))


def _batch(n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    prob = _problem()
    x1, y = prob.sample_data(n, g)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    s, t = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    s, t = torch.minimum(s, t), torch.maximum(s, t)
    xs = (1 - s[:, None]) * x0 + s[:, None] * x1
    y = torch.where(torch.arange(n) % 4 == 0, torch.full_like(y, 3), y)  # some null labels
    alpha = 3.0 * torch.rand(n, generator=g, dtype=torch.float64)
    ob = OffDiagonalBatch(x0, x1, xs, x1 - x0, s, t, torch.rand(n, generator=g, dtype=torch.float64))
    return prob, ob, y, alpha


def test_guided_velocity_is_eq_99():
    prob, ob, y, alpha = _batch()
    fm = FlowMap(ExactGuidedNet(prob), time_input="s_t")
    got = guided_velocity(fm, ob.x_s, ob.s, y, alpha, 3)
    assert torch.allclose(got, prob.guided_velocity(ob.x_s, ob.s, y, alpha), atol=1e-10)
    # alpha = 0 is the unconditional velocity, alpha = 1 the conditional one
    assert torch.allclose(guided_velocity(fm, ob.x_s, ob.s, y, 0.0, 3), prob.velocity(ob.x_s, ob.s, torch.full_like(y, 3)))
    assert torch.allclose(guided_velocity(fm, ob.x_s, ob.s, y, 1.0, 3), prob.velocity(ob.x_s, ob.s, y))


@pytest.mark.parametrize("method", GUIDED)
def test_guided_residual_vanishes_at_the_exact_guided_map(method):
    prob, ob, y, alpha = _batch()
    obj = Objective(ObjectiveConfig(method=method, label_dropout=0.1, guidance_max=3.0, jvp_backend="forward_ad"),
                    sigma=1.0, num_classes=3)
    exact = FlowMap(ExactGuidedNet(prob, steps=24), time_input="s_t")
    wrong = FlowMap(ExactGuidedNet(prob, steps=24, alpha_shift=0.5), time_input="s_t")
    cond = {"y": y, "alpha": alpha}
    r_exact = obj.off_diagonal_residual(exact, ob, None, **cond)
    r_wrong = obj.off_diagonal_residual(wrong, ob, None, **cond)
    scale = ob.dx_s.square().sum(1).mean()
    assert r_exact.square().sum(1).mean() / scale < 1e-8
    assert r_wrong.square().sum(1).mean() / scale > 1e-3


def test_guidance_needs_labels_and_label_dropout():
    with pytest.raises(ValueError, match="label_dropout"):
        ObjectiveConfig(method="lsd", guidance_max=2.0).validate()
    with pytest.raises(ValueError, match="lsd, esd"):
        ObjectiveConfig(method="meanflow", label_dropout=0.1, guidance_max=2.0).validate()
    with pytest.raises(ValueError, match="class labels"):
        Objective(ObjectiveConfig(method="lsd", label_dropout=0.1, guidance_max=2.0), sigma=1.0)
