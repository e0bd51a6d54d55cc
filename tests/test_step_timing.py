import math

import torch

from flowmaps.autoconfig import as_layer, auto_config
from flowmaps.step_timing import step_seconds


def test_step_seconds_runs_a_real_step_and_leaves_the_rng_alone():
    layer = as_layer(auto_config("digits", minutes=1, device="cpu"))
    layer["net"]["model_channels"] = 8
    layer["train"]["batch_size"] = 8
    before = torch.get_rng_state()
    sec = step_seconds(layer, (1, 8, 8), 0.5, repeats=1)
    assert math.isfinite(sec) and sec > 0
    assert torch.equal(torch.get_rng_state(), before)  # the trainer's seeded draws are not shifted
