"""Time a few training steps of a candidate configuration, for choices made by measurement.

:func:`flowmaps.autoconfig.auto_config` uses it to pick a CPU image run's resolution, UNet width
and batch from the budget: a step's cost depends on the machine it runs on (and on a shared one,
on the minute: benchmarks/README.md), so the choice is made from this machine's own timing.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from .config import build_config
from .losses.curriculum import FULL
from .losses.objective import Objective
from .train.builders import NETWORK_FAMILIES, build_flow_map


def step_seconds(layer: dict[str, Any], shape: tuple[int, ...], sigma: float, repeats: int = 2) -> float:
    """Seconds of one full training step (objective, backward, clip, RAdam, weight normalisation)
    of the configuration ``layer`` on random data of item ``shape``: the fastest of ``repeats``
    timed steps after one untimed one. Uses its own generator; the global RNG is left as it was."""
    cfg = build_config(layer)
    rng = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        fm = build_flow_map(cfg, shape, 0, sigma)
        family = NETWORK_FAMILIES[cfg.net.kind]
        objective = Objective(cfg.objective_config(), sigma)
        opt = torch.optim.RAdam(fm.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas))
        gen = torch.Generator().manual_seed(0)
        x1 = torch.rand(cfg.train.batch_size, *shape, generator=gen) * 2 - 1
        best = float("inf")
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            objective(fm, x1, {}, gen, FULL).loss.backward()
            torch.nn.utils.clip_grad_norm_(fm.parameters(), cfg.train.grad_clip)
            opt.step()
            if family.after_step is not None:
                family.after_step(fm)
            if i:
                best = min(best, time.perf_counter() - t0)
        return best
    finally:
        torch.set_rng_state(rng)
