import math

import pytest

from flowmaps.config import build_config, preset
from flowmaps.schedule import LRSchedule, cosine_lr, inverse_sqrt_lr, wsd_lr
from flowmaps.train.trainer import lr_at


def test_wsd_warms_up_holds_then_decays_to_zero():
    sch = LRSchedule("wsd", 1e-3, total_steps=1000, warmup=0.1, decay=0.3)
    lrs = [sch(k) for k in range(1000)]
    assert lrs[0] == pytest.approx(1e-3 / 100) and lrs[99] == pytest.approx(1e-3)
    assert all(a <= b + 1e-15 for a, b in zip(lrs[:100], lrs[1:100]))  # warm-up rises
    assert all(v == 1e-3 for v in lrs[100:700])  # stable phase
    assert all(a > b for a, b in zip(lrs[700:], lrs[701:]))  # decay is strictly decreasing
    assert 0 < lrs[-1] <= 1e-3 / 300 + 1e-15  # ends at (nearly) zero, never exactly zero


def test_cosine_ends_near_zero_and_inverse_sqrt_is_edm2():
    lrs = [cosine_lr(k, 1.0, 500) for k in range(500)]
    assert lrs[0] == pytest.approx(1.0, abs=1e-4) and 0 < lrs[-1] < 1e-3
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert inverse_sqrt_lr(0, 1e-2, 35000) == inverse_sqrt_lr(35000, 1e-2, 35000) == 1e-2
    assert inverse_sqrt_lr(140000, 1e-2, 35000) == pytest.approx(1e-2 / 2)
    assert wsd_lr(10, 1.0, 100, 0.0) == 1.0


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="warmup"):
        LRSchedule("wsd", 1.0, 100, warmup=0.8, decay=0.3)
    with pytest.raises(ValueError, match="unknown schedule"):
        LRSchedule("linear", 1.0, 100)


def test_paper_presets_keep_the_inverse_sqrt_of_table_2():
    for name in ("checker", "cifar10", "celeba64", "afhq64"):
        cfg = build_config(preset(name))
        assert cfg.train.schedule == "inverse_sqrt" and cfg.train.warmup == 0.0 and cfg.train.lr_decay_steps == 35000
        lr0 = cfg.train.lr
        assert lr_at(0, cfg) == lr_at(35_000, cfg) == lr0
        assert lr_at(140_000, cfg) == pytest.approx(lr0 / 2)
        assert lr_at(cfg.train.steps - 1, cfg) == pytest.approx(lr0 / math.sqrt((cfg.train.steps - 1) / 35000))


def test_cpu_presets_decay_to_zero_at_their_end():
    cfg = build_config(preset("checker-cpu"))
    assert cfg.train.schedule == "wsd"
    assert lr_at(cfg.train.steps - 1, cfg) < 1e-3 * cfg.train.lr
