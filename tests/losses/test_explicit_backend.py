"""Every loss that differentiates through a JVP has the same value and gradient with the MLP's
explicit tangents as with torch.func (float64)."""
import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.losses.objective import Teacher
from flowmaps.nets import MLP

CASES = [
    ("lsd", {}), ("lsd-semigrad", {}), ("meanflow", {}),
    ("esd", {"esd_stopgrad": "full"}), ("esd", {"esd_stopgrad": "convex"}),
    ("esd", {"esd_stopgrad": "none"}), ("esd", {"esd_stopgrad": "semigradient"}),
    ("lmd", {}), ("emd", {}),
    ("lsd", {"guidance_max": 3.0, "label_dropout": 0.2}),
    ("esd", {"guidance_max": 3.0, "label_dropout": 0.2}),
    ("esd", {"guidance_max": 3.0, "label_dropout": 0.2, "esd_stopgrad": "none"}),
]


def _net(guided):
    kw = dict(num_classes=3, guidance=True) if guided else {}
    return MLP(dim=2, width=24, depth=2, sigma=0.8, activation="gelu", time_features=2, **kw).double()


@pytest.mark.parametrize("method,extra", CASES)
def test_loss_and_gradient_equal_the_reference_backend(method, extra):
    guided = "guidance_max" in extra
    torch.manual_seed(0)
    fm = FlowMap(_net(guided))
    teacher = None
    if method in ("lmd", "emd"):
        torch.manual_seed(1)
        teacher = Teacher.from_flow_map(FlowMap(_net(False)))
    x1 = torch.randn(32, 2, dtype=torch.float64)
    cond = {"y": torch.randint(0, 3, (32,))} if guided else {}
    results = {}
    for backend in ("func", "explicit"):
        obj = Objective(ObjectiveConfig(method=method, eta=0.25, jvp_backend=backend, **extra), sigma=0.8,
                        teacher=teacher, num_classes=3 if guided else 0)
        fm.zero_grad()
        out = obj(fm, x1, cond, generator=torch.Generator().manual_seed(2))
        out.loss.backward()
        results[backend] = (out.loss.detach(), torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None]))
    (l_ref, g_ref), (l, g) = results["func"], results["explicit"]
    assert torch.allclose(l, l_ref, rtol=1e-10, atol=0)
    assert g_ref.norm() > 0
    assert torch.allclose(g, g_ref, rtol=1e-8, atol=1e-12 * float(g_ref.abs().max()))
