"""A small guided MLP trained with guided LSD on the two-class Gaussian problem follows the exact
guided map at several guidance scales (alpha = 0 unconditional, 1 conditional, 2 guided).

The 5% target of issue 9 is measured with the main job's network in benchmarks/guided_maps.py
(3% to 5%); this test uses a small network and budget, so its tolerance is looser (20% of the
data's scale), and it also checks that the scale input does its job: the map at alpha = 2 is far
closer to the exact guided map than the conditional map (alpha = 1) is.
"""
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig, sample
from flowmaps.data.toy2d import two_class_problem
from flowmaps.nets import MLP
from flowmaps.schedule import LRSchedule

STEPS = 1200
TOLERANCE = 0.2  # of the data's scale: measured 16% at most (alpha = 2), 3% to 5% with the benchmark's budget


def test_guided_lsd_learns_the_exact_guided_map():
    prob = two_class_problem(1.0)
    torch.manual_seed(0)
    fm = FlowMap(MLP(dim=2, width=96, depth=3, num_classes=2, guidance=True, activation="silu"))
    obj = Objective(ObjectiveConfig(method="lsd", weighting="none", label_dropout=0.2, guidance_max=3.0), sigma=1.0,
                    num_classes=2)
    opt = torch.optim.RAdam(fm.parameters(), lr=4e-3, betas=(0.9, 0.95))
    lr = LRSchedule("wsd", 4e-3, STEPS, 0.02, 0.3)
    g = torch.Generator().manual_seed(0)
    for k in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lr(k)
        x, y = prob.sample_data(256, g)
        loss = obj(fm, x.float(), {"y": y}, generator=g).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    n = 2000
    data, _ = prob.sample_data(50000, g)
    scale = float((data - data.mean(0)).square().sum(1).mean().sqrt())
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    s, t = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)

    def err(c: int, alpha: float, exact_alpha: float | None = None) -> float:
        y = torch.full((n,), c)
        exact = prob.X(x0, s, t, y, alpha if exact_alpha is None else exact_alpha, steps=64)
        got = sample(fm, x0.float(), 1, labels=y, guidance=alpha).double()
        return float((got - exact).square().sum(1).mean().sqrt()) / scale

    errors = {(c, a): err(c, a) for a in (0.0, 1.0, 2.0) for c in (0, 1)}
    assert max(errors.values()) < TOLERANCE, errors
    for c in (0, 1):  # the scale input does its job: alpha = 2 is far closer to guidance 2 than alpha = 1 is
        assert err(c, 1.0, exact_alpha=2.0) > 2 * errors[(c, 2.0)]

