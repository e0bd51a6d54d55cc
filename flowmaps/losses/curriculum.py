"""The training curriculum of App. F.2: flow matching alone first, then a largest jump t - s
that grows linearly to 1. Off by default (the paper trained without it).

A stage is a pure function of the step and the run's length, so resumed and budgeted runs
follow the same curriculum.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CurriculumStage:
    """What the objective trains at one step: ``diagonal_only`` (flow matching on the whole
    batch) or the off-diagonal term with jumps |t - s| <= ``max_gap`` (in (0, 1])."""

    diagonal_only: bool = False
    max_gap: float = 1.0


FULL = CurriculumStage()


def curriculum_stage(step: int, total_steps: int, fm_fraction: float, ramp_fraction: float) -> CurriculumStage:
    """The stage at 0-based ``step`` of a ``total_steps`` run: the first ``fm_fraction`` of the
    steps are flow matching only; over the next ``ramp_fraction`` the largest jump grows
    linearly from 1 / (ramp steps) to 1; the rest trains the full triangle."""
    if not 0.0 <= fm_fraction < 1.0 or not 0.0 <= ramp_fraction < 1.0 or fm_fraction + ramp_fraction >= 1.0:
        raise ValueError(f"curriculum fractions must be >= 0 and sum to < 1, got fm {fm_fraction}, ramp {ramp_fraction}")
    fm_steps = int(round(fm_fraction * total_steps))
    ramp_steps = int(round(ramp_fraction * total_steps))
    if step < fm_steps:
        return CurriculumStage(diagonal_only=True)
    k = step - fm_steps
    if k < ramp_steps:
        return CurriculumStage(max_gap=(k + 1) / ramp_steps)
    return FULL
