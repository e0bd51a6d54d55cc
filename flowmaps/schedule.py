"""Learning-rate schedules that know where training ends.

Each schedule is a pure function of the step k (0-based, the step about to be taken) and the
total step count, so a run resumed at any step, or rerun from its saved config, takes exactly
the same learning rates.

- ``inverse_sqrt``: EDM2's lr0 / sqrt(max(k / decay_steps, 1)) (the paper's Table 2 presets; it
  never reaches zero and does not depend on the total).
- ``wsd``: warm-up, a constant phase, then a linear decay to zero over the last ``decay``
  fraction of the steps (warmup-stable-decay).
- ``cosine``: warm-up, then a half cosine from lr0 to zero at the last step.
- ``constant``: warm-up, then lr0.

Warm-up is linear from lr0 / warmup_steps to lr0 over ``warmup`` (a fraction of the total).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES: tuple[str, ...] = ("inverse_sqrt", "wsd", "cosine", "constant")


@dataclass(frozen=True)
class LRSchedule:
    """lr(k) for k = 0 .. total_steps - 1.

    kind: one of :data:`SCHEDULES`; lr: the peak rate lr0; total_steps: the run's length;
    warmup: fraction of the steps spent warming up; decay: fraction spent decaying to zero
    (``wsd`` only); decay_steps: the reference step count of ``inverse_sqrt``.
    """

    kind: str
    lr: float
    total_steps: int
    warmup: float = 0.0
    decay: float = 0.3
    decay_steps: int = 35000

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.warmup < 1.0 or not 0.0 <= self.decay <= 1.0 or self.warmup + self.decay > 1.0:
            raise ValueError(f"schedule fractions must satisfy 0 <= warmup < 1, 0 <= decay <= 1 and warmup + decay <= 1; "
                             f"got warmup={self.warmup}, decay={self.decay}")

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup * self.total_steps))

    def __call__(self, step: int) -> float:
        warm = self.warmup_steps
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.kind == "inverse_sqrt":
            return inverse_sqrt_lr(step, self.lr, self.decay_steps)
        if self.kind == "constant":
            return self.lr
        if self.kind == "cosine":
            return cosine_lr(step - warm, self.lr, self.total_steps - warm)
        return wsd_lr(step, self.lr, self.total_steps, self.decay)


def inverse_sqrt_lr(step: int, lr: float, decay_steps: int) -> float:
    """EDM2: lr0 / sqrt(max(step / decay_steps, 1))."""
    return lr / math.sqrt(max(step / max(decay_steps, 1), 1.0))


def wsd_lr(step: int, lr: float, total_steps: int, decay: float) -> float:
    """Constant lr0, then linear to zero over the last ``decay`` fraction; the last step has
    lr0 / decay_steps (never exactly zero, so every step updates the weights)."""
    decay_steps = max(int(round(decay * total_steps)), 1 if decay > 0 else 0)
    start = total_steps - decay_steps
    if step < start or decay_steps == 0:
        return lr
    return lr * (total_steps - step) / decay_steps


def cosine_lr(step: int, lr: float, total_steps: int) -> float:
    """Half cosine from lr0 at step 0 to lr0 (1 - cos(pi / total)) / 2 > 0 at the last step."""
    total = max(total_steps, 1)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / (total + 1)))
