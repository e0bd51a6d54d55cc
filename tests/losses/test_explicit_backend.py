"""Every loss that differentiates through a JVP has the same value and gradient with the explicit
tangents (the MLP's, the EDM2 UNet's and the DiT's) as with torch.func (float64)."""
import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.losses.objective import Teacher
from flowmaps.nets import MLP
from flowmaps.nets.dit import DiT, DiTConfig
from flowmaps.nets.edm2 import EDM2Config, EDM2UNet

CASES = [
    ("lsd", {}), ("lsd-semigrad", {}), ("meanflow", {}),
    ("esd", {"esd_stopgrad": "full"}), ("esd", {"esd_stopgrad": "convex"}),
    ("esd", {"esd_stopgrad": "none"}), ("esd", {"esd_stopgrad": "semigradient"}),
    ("lmd", {}), ("emd", {}),
    ("lsd", {"guidance_max": 3.0, "label_dropout": 0.2}),
    ("esd", {"guidance_max": 3.0, "label_dropout": 0.2}),
    ("esd", {"guidance_max": 3.0, "label_dropout": 0.2, "esd_stopgrad": "none"}),
]


def _net(kind, guided):
    kw = dict(num_classes=3, guidance=True) if guided else {}
    if kind == "edm2":
        cfg = EDM2Config(img_resolution=8, img_channels=1, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                         attn_resolutions=[4], channels_per_head=8, dropout=0.0, **kw)
        net = EDM2UNet(cfg)
        with torch.no_grad():  # away from the zero-initialised gains, so every layer matters
            net.out_gain.fill_(0.5)
            for m in net.modules():
                if hasattr(m, "emb_gain"):
                    m.emb_gain.fill_(0.3)
        return FlowMap(net.double(), "s_dt")
    if kind == "dit":
        torch.manual_seed(0)
        net = DiT(DiTConfig(input_shape=(1, 8, 8), patch_size=2, hidden=16, depth=1, heads=2, **kw))
        with torch.no_grad():  # away from the zero-initialised modulations and output
            for name, p in net.named_parameters():
                if "ada" in name or name.startswith("out."):
                    p.normal_(0, 0.05)
        return FlowMap(net.double(), "s_dt")
    return FlowMap(MLP(dim=2, width=24, depth=2, sigma=0.8, activation="gelu", time_features=2, **kw).double())


@pytest.mark.parametrize("kind,method,extra", [("mlp", m, e) for m, e in CASES] + [("edm2", m, e) for m, e in CASES[:5]]
                         + [("edm2", *CASES[10])] + [("dit", m, e) for m, e in CASES[:5]] + [("dit", *CASES[9])])
def test_loss_and_gradient_equal_the_reference_backend(kind, method, extra):
    guided = "guidance_max" in extra
    torch.manual_seed(0)
    fm = _net(kind, guided)
    teacher = None
    if method in ("lmd", "emd"):
        torch.manual_seed(1)
        teacher = Teacher.from_flow_map(_net(kind, False))
    x1 = torch.randn(32, 2, dtype=torch.float64) if kind == "mlp" else torch.randn(8, 1, 8, 8, dtype=torch.float64)
    cond = {"y": torch.randint(0, 3, (x1.shape[0],))} if guided else {}
    results = {}
    for backend in ("func", "explicit"):
        obj = Objective(ObjectiveConfig(method=method, eta=0.25, jvp_backend=backend, **extra), sigma=0.8,
                        teacher=teacher, num_classes=3 if guided else 0)
        fm.zero_grad()
        out = obj(fm, x1, cond, generator=torch.Generator().manual_seed(2))
        out.loss.backward()
        results[backend] = (out.loss.detach(), torch.cat([p.grad.flatten() for p in fm.parameters() if p.grad is not None]))
    (loss_ref, g_ref), (loss, g) = results["func"], results["explicit"]
    assert torch.allclose(loss, loss_ref, rtol=1e-10, atol=0)
    assert g_ref.norm() > 0
    assert torch.allclose(g, g_ref, rtol=1e-8, atol=1e-12 * float(g_ref.abs().max()))
