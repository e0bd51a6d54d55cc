import pytest
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


@pytest.mark.parametrize("time_input", ["s_t", "s_dt"])
def test_fourier_features_of_point_and_times_keep_jvps_exact(time_input):
    net = MLP(dim=2, width=16, depth=2, sigma=0.7, time_features=3, x_features=4).double()
    assert net.body[0].in_features == 2 * (1 + 2 * 4) + 2 + 4 * 3
    fm = FlowMap(net, time_input=time_input)
    x, s = torch.randn(5, 2, dtype=torch.float64), torch.rand(5, dtype=torch.float64) * 0.5
    t = s + torch.rand(5, dtype=torch.float64) * 0.5
    assert check_jvp(lambda tt: fm.X(x, s, tt), (t,), (torch.ones_like(t),)).worst() < 1e-7
    assert check_jvp(lambda ss: fm.X(x, ss, t), (s,), (torch.ones_like(s),)).worst() < 1e-7
    assert check_jvp(lambda xx: fm.X(xx, s, t), (x,), (torch.randn_like(x),)).worst() < 1e-7
    assert torch.equal(fm.X(x, s, s), x)  # X_{s,s} = id whatever the features
    with pytest.raises(TypeError):
        MLP(dim=2, x_feature=3)  # a typo is an error, not a silent default
