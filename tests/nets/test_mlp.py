import torch

from flowmaps import FlowMap, check_jvp
from flowmaps.nets import MLP


def test_paper_checker_mlp_shape():
    net = MLP(dim=2, width=512, depth=4, sigma=0.6)
    linears = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 512)] + [(512, 512)] * 4 + [(512, 2)]
    assert net.log_weight(torch.rand(3), torch.rand(3)) is None


def test_mlp_jvp_and_sigma_scaling():
    fm = FlowMap(MLP(dim=2, width=16, depth=2, sigma=2.0).double())
    x, s, t = torch.randn(5, 2, dtype=torch.float64), torch.rand(5, dtype=torch.float64) * 0.5, torch.rand(5, dtype=torch.float64)
    assert check_jvp(lambda tt: fm.X(x, s, tt), (t,), (torch.ones_like(t),)).worst() < 1e-7
    out = fm.net(x, s, t)
    raw = fm.net.body(torch.cat([s[:, None], t[:, None], x / 2.0], 1)) * 2.0
    assert torch.allclose(out, raw)
