import pytest
import torch

from flowmaps import FlowMap, Objective, ObjectiveConfig
from flowmaps.losses.curriculum import CurriculumStage, curriculum_stage
from flowmaps.losses.times import sample_off_diagonal

from ..helpers import TinyMLP


def test_stages_follow_the_fractions():
    stages = [curriculum_stage(k, 100, 0.2, 0.3) for k in range(100)]
    assert all(st.diagonal_only for st in stages[:20]) and not any(st.diagonal_only for st in stages[20:])
    gaps = [st.max_gap for st in stages[20:50]]
    assert gaps[0] == pytest.approx(1 / 30) and gaps[-1] == 1.0
    assert all(b > a for a, b in zip(gaps, gaps[1:]))  # grows linearly to 1
    assert all(st == CurriculumStage() for st in stages[50:])
    assert curriculum_stage(0, 100, 0.0, 0.0) == CurriculumStage()  # off by default
    with pytest.raises(ValueError, match="sum to < 1"):
        curriculum_stage(0, 100, 0.6, 0.5)


@pytest.mark.parametrize("full_square", [False, True])
def test_banded_times_are_uniform_on_the_band(full_square):
    g = torch.Generator().manual_seed(0)
    m = 0.3
    s, t = sample_off_diagonal(200_000, full_square, g, max_gap=m)
    gap = (t - s).abs()
    assert float(gap.max()) <= m + 1e-6 and float(s.min()) >= 0 and float(t.max()) <= 1 + 1e-6
    if not full_square:
        assert bool((s <= t).all())
    else:
        assert 0.45 < float((t < s).float().mean()) < 0.55
    # uniform on the band: the gap's density is proportional to 1 - g, so its mean is
    # (m^2/2 - m^3/3) / (m - m^2/2), and the times' midpoint is uniform over each gap's range
    expect = (m**2 / 2 - m**3 / 3) / (m - m**2 / 2)
    assert float(gap.mean()) == pytest.approx(expect, rel=0.01)
    lo = torch.minimum(s, t)
    hist = torch.histc(lo, bins=10, min=0, max=1)
    density = hist / hist.sum()
    # the lower time's density on the band falls linearly only over its last m of [0, 1]
    assert float(density[:6].std() / density[:6].mean()) < 0.02


def test_fm_stage_trains_only_the_diagonal_and_the_ramp_limits_jumps():
    torch.manual_seed(0)
    fm = FlowMap(TinyMLP(dim=2, width=16))
    obj = Objective(ObjectiveConfig(method="lsd", curriculum_fm=0.1, curriculum_ramp=0.2), sigma=1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2)
    first = obj(fm, x, generator=g, stage=obj.stage(0, 100))
    assert first.diag_sq.shape == (64,) and first.off_sq.numel() == 0 and torch.isfinite(first.loss)
    ramp = obj(fm, x, generator=g, stage=obj.stage(14, 100))  # 5 of 20 ramp steps: jumps <= 0.25
    assert ramp.off_sq.numel() == 16 and float((ramp.t_off - ramp.s_off).max()) <= 0.25 + 1e-6
    full = obj(fm, x, generator=g)
    assert float((full.t_off - full.s_off).max()) > 0.5


def test_curriculum_config_errors_are_clear():
    with pytest.raises(ValueError, match="uniform or uniform_gap time sampling"):
        ObjectiveConfig(method="lsd", curriculum_ramp=0.2, time_sampling="logit_normal").validate()
    with pytest.raises(ValueError, match="curriculum fractions"):
        ObjectiveConfig(method="lsd", curriculum_fm=-0.1).validate()


def test_uniform_gap_draws_large_jumps_as_often_as_small_ones():
    g = torch.Generator().manual_seed(0)
    s, t = sample_off_diagonal(100_000, False, g, kind="uniform_gap")
    gap = t - s
    assert bool((gap >= 0).all()) and float(s.min()) >= 0 and float(t.max()) <= 1 + 1e-6
    hist = torch.histc(gap, bins=10, min=0, max=1)
    assert float(hist.std() / hist.mean()) < 0.03  # flat, where the uniform triangle gives 2 (1 - g)
    s2, t2 = sample_off_diagonal(100_000, False, g, kind="uniform_gap", max_gap=0.5)
    assert float((t2 - s2).max()) <= 0.5 + 1e-6 and float((t2 - s2).mean()) == pytest.approx(0.25, rel=0.02)
