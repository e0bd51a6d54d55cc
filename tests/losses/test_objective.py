import pytest
import torch
from torch import nn

from flowmaps import FlowMap, Objective, ObjectiveConfig, Teacher
from flowmaps.exact import ExactGaussianNet
from flowmaps.losses import METHODS, split_batch

from ..helpers import TinyMLP


class Recorder(nn.Module):
    """Wraps a net and records the batch size and dropout state of every call."""

    def __init__(self, net, p=0.0):
        super().__init__()
        self.net, self.drop, self.calls = net, nn.Dropout(p), []

    def forward(self, x, a, b):
        self.calls.append((x.shape[0], self.drop.training, torch.is_grad_enabled()))
        return self.drop(self.net(x, a, b))


def _teacher():
    return Teacher.from_flow_map(FlowMap(TinyMLP(dim=2, width=16)))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains(method):
    torch.manual_seed(0)
    fm = FlowMap(TinyMLP(dim=2, width=16))
    obj = Objective(ObjectiveConfig(method=method), sigma=1.0, teacher=_teacher())
    out = obj(fm, torch.randn(32, 2), generator=torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fm.parameters())
    n_d = 32 if method == "fm" else 24
    assert out.diag_sq.shape == (n_d,) and out.off_sq.shape == (32 - n_d,)
    if method != "fm":
        assert bool((out.s_off <= out.t_off).all())


@pytest.mark.parametrize("method", ["lsd", "esd", "psd-u", "psd-m", "lsd-semigrad"])
def test_objective_vanishes_off_diagonal_at_exact_map(gaussian, method):
    fm = FlowMap(ExactGaussianNet(gaussian))
    obj = Objective(ObjectiveConfig(method=method, weighting="none"), sigma=gaussian.sigma)
    out = obj(fm, gaussian.sample_data(64))
    assert float(out.off_sq.max()) < 1e-20
    assert float(out.diag_sq.mean()) > 0.1  # flow matching keeps its conditional variance


def test_split_batch():
    assert split_batch(100, 0.75) == (75, 25)
    assert split_batch(4, 0.75) == (3, 1)
    assert split_batch(2, 0.99) == (1, 1)
    assert split_batch(2, 0.01) == (1, 1)
    assert split_batch(7, 1.0) == (7, 0)
    with pytest.raises(ValueError):
        split_batch(1, 0.5)


def test_each_sample_runs_only_its_branch():
    torch.manual_seed(0)
    rec = Recorder(TinyMLP(dim=2, width=16))
    fm = FlowMap(rec)
    Objective(ObjectiveConfig(method="lsd"), sigma=1.0)(fm, torch.randn(16, 2))
    sizes = sorted(c[0] for c in rec.calls)
    assert sizes == [4, 4, 12]  # diagonal (12), JVP (4), teacher (4); nothing on all 16
    rec.calls.clear()
    Objective(ObjectiveConfig(method="psd-m"), sigma=1.0)(fm, torch.randn(16, 2))
    # one shared student call with gradient (12 + 4), two teacher calls without
    assert sorted((c[0], c[2]) for c in rec.calls) == [(4, False), (4, False), (16, True)]


def test_dropout_only_on_the_diagonal():
    torch.manual_seed(0)
    rec = Recorder(TinyMLP(dim=2, width=16), p=0.1)
    fm = FlowMap(rec).train()
    for method in ("lsd", "psd-u", "esd"):
        rec.calls.clear()
        Objective(ObjectiveConfig(method=method), sigma=1.0)(fm, torch.randn(16, 2))
        assert [c[1] for c in rec.calls if c[0] == 12] == [True], method
        assert all(not c[1] for c in rec.calls if c[0] == 4), method
    assert rec.drop.training  # restored afterwards


def test_full_square_samples_both_directions():
    fm = FlowMap(TinyMLP(dim=2, width=16))
    obj = Objective(ObjectiveConfig(method="lsd", eta=0.5, full_square=True), sigma=1.0)
    out = obj(fm, torch.randn(400, 2))
    assert bool((out.s_off > out.t_off).any()) and bool((out.s_off < out.t_off).any())


def test_reductions_and_weighting():
    fm = FlowMap(TinyMLP(dim=2, width=16))
    x = torch.randn(40, 2)
    kw = dict(method="psd-m", weighting="none")
    a = Objective(ObjectiveConfig(**kw), 1.0)(fm, x, generator=torch.Generator().manual_seed(0))
    b = Objective(ObjectiveConfig(reduction="sum_of_means", **kw), 1.0)(fm, x, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a.loss, 0.75 * a.diag_sq.mean() + 0.25 * a.off_sq.mean())
    assert torch.allclose(b.loss, a.diag_sq.mean() + a.off_sq.mean())
    c = Objective(ObjectiveConfig(method="psd-m", weighting="constant"), 1.0)(
        fm, x, generator=torch.Generator().manual_seed(0)
    )
    expected = (torch.exp(torch.tensor(-1.0)) * torch.cat([a.diag_sq, a.off_sq]) + 1).mean()
    assert torch.allclose(c.loss, expected)


def test_learned_weight_head_is_used():
    from flowmaps.nets import MLP

    fm = FlowMap(MLP(dim=2, width=32, depth=1, learned_weight=True))
    obj = Objective(ObjectiveConfig(method="lsd", weighting="learned"), 1.0)
    obj(fm, torch.randn(16, 2)).loss.backward()
    assert fm.net.weight_head[0].weight.grad is not None
    with pytest.raises(ValueError, match="log_weight"):
        Objective(ObjectiveConfig(method="lsd", weighting="learned"), 1.0)(FlowMap(TinyMLP()), torch.randn(8, 2))


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="choose one of"):
        Objective(ObjectiveConfig(method="lsdd"), 1.0)
    with pytest.raises(ValueError, match="esd_stopgrad"):
        Objective(ObjectiveConfig(method="esd", esd_stopgrad="half"), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="teacher"):
        Objective(ObjectiveConfig(method="lmd"), 1.0)
    with pytest.raises(ValueError, match="power of two"):
        Objective(ObjectiveConfig(method="shortcut", shortcut_max_steps=100), 1.0)
    with pytest.raises(ValueError, match="eta"):
        Objective(ObjectiveConfig(method="lsd", eta=1.0), 1.0)


def test_class_conditioning_is_split_with_the_batch():
    class Cond(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.emb = TinyMLP(dim=2, width=16), nn.Embedding(3, 2)

        def forward(self, x, a, b, y):
            assert y.shape[0] == x.shape[0]
            return self.net(x + self.emb(y), a, b)

    fm = FlowMap(Cond())
    for method in ("lsd", "psd-u", "esd", "meanflow"):
        out = Objective(ObjectiveConfig(method=method), 1.0)(fm, torch.randn(16, 2), cond={"y": torch.randint(0, 3, (16,))})
        out.loss.backward()
    assert fm.net.emb.weight.grad is not None


def test_logit_normal_times_stay_ordered_and_lean_towards_mu():
    from flowmaps.losses.times import sample_off_diagonal, sample_time

    g = torch.Generator().manual_seed(0)
    t = sample_time(20000, g, kind="logit_normal", mu=0.8, std=1.0)
    assert float(t.min()) > 0 and float(t.max()) < 1 and float(t.mean()) > 0.6  # leaning towards the data (t = 1)
    s, t2 = sample_off_diagonal(5000, False, g, kind="logit_normal")
    assert bool((s <= t2).all())
    with pytest.raises(ValueError, match="time sampling"):
        sample_time(3, g, kind="beta")


def test_adaptive_weight_is_zero_at_the_exact_map_and_rescales_the_gradient(gaussian):
    from flowmaps.losses.weighting import adaptive_weighted_loss

    x1 = gaussian.sample_data(64, torch.Generator().manual_seed(1))
    for method in ("lsd", "psd-m", "esd"):
        cfg = ObjectiveConfig(method=method, weighting="adaptive", adaptive_power=1.0, time_sampling="logit_normal")
        out = Objective(cfg, gaussian.sigma)(FlowMap(ExactGaussianNet(gaussian), time_input="s_t"), x1,
                                             generator=torch.Generator().manual_seed(0))
        assert float(out.off_diagonal) < 1e-12, method  # the distillation residual vanishes at the exact map
        assert 0 < float(out.diagonal.detach()) < 1  # flow matching keeps its conditional variance, rescaled
    sq = torch.tensor([0.5, 2.0], requires_grad=True)
    adaptive_weighted_loss(sq, 0.5, 1e-3).sum().backward()
    assert torch.allclose(sq.grad, 1 / (sq.detach() + 1e-3).sqrt())  # the weight is under stop-gradient
    with pytest.raises(ValueError, match="adaptive"):
        ObjectiveConfig(weighting="adaptive", adaptive_power=-1).validate()
