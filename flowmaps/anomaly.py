"""Anomaly scores from a trained flow map: one number per input, larger = less like the data.

The default, ``denoise`` at strengths 0.1, 0.2, 0.3 with 4 draws (12 calls), was chosen by
measurement (benchmarks/README.md): within 0.001 of the best of four scores on the one-class
digits (AUROC 0.991) and 0.82 on checkerboard points, where the map-based ``restore`` at
0.3-0.7 scored 0.63 (its own randomness drowns the distance to the data in 2-D).

Time convention: t = 0 is noise, t = 1 is data. Inputs x are [B, ...] in the data's scale.
``restore`` and ``denoise`` use the linear interpolant's formulas (:func:`flowmaps.edit.check_linear`
refuses other runs in the CLI); ``code`` works for any interpolant.

- ``restore``: the restoration error. Each input goes to t0 = 1 - strength with fresh noise and
  the map brings it back to data (:func:`flowmaps.edit.edit`); the score is the mean squared
  difference to the input, averaged over the strengths and noise draws. An input like the
  training data comes back close to itself; an unusual one is pulled towards the data and moves.
  Network calls per input: strengths x draws x steps.
- ``denoise``: the same with the diagonal's one-call posterior mean
  (:func:`flowmaps.edit.denoised`) in place of the map. Calls: strengths x draws.
- ``code``: -log N(z; 0, I) per dimension of the code z = X_{1,0}(x) / sigma (maps trained with
  ``loss.full_square=true``; :mod:`flowmaps.encode`). The code's density, not the input's (no
  Jacobian term). Calls: steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .edit import denoised, edit, noise_like, start_time, to_time
from .encode import check_invertible, code_nll, encode
from .errors import InputError
from .flow_map import FlowMap
from .sampling import apply_batched

SCORES = ("restore", "denoise", "code")


@dataclass
class ScoreSettings:
    """How a score is computed: ``kind`` (one of :data:`SCORES`), the ``strengths`` (each in (0, 1])
    and noise ``draws`` averaged over, and the map's ``steps`` per restoration or encoding."""

    kind: str = "denoise"
    strengths: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3])
    draws: int = 4
    steps: int = 1

    def validate(self) -> None:
        if self.kind not in SCORES:
            raise InputError(f"unknown score {self.kind!r}; choose one of {', '.join(SCORES)}")
        for s in self.strengths:
            start_time(s)
        if not self.strengths or self.draws < 1 or self.steps < 1:
            raise InputError("a score needs at least one strength, one draw and one step")

    def network_calls(self) -> int:
        """Network calls per input."""
        if self.kind == "code":
            return self.steps
        per = self.steps if self.kind == "restore" else 1
        return len(self.strengths) * self.draws * per


def _squared_error(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).float().flatten(1).pow(2).mean(1)


@torch.no_grad()
def restoration_score(fm: FlowMap, x: Tensor, sigma: float, settings: ScoreSettings,
                      generator: torch.Generator | None = None, **cond: Any) -> Tensor:
    """Mean squared restoration error [B] over ``settings.strengths`` x ``settings.draws``: through
    the map (``restore``) or the diagonal's posterior mean (``denoise``)."""
    total = torch.zeros(x.shape[0], device=x.device)
    for strength in settings.strengths:
        for _ in range(settings.draws):
            if settings.kind == "restore":
                back = edit(fm, x, strength, settings.steps, sigma, generator, **cond)
            else:
                t0 = start_time(strength)
                back = denoised(fm, to_time(x, t0, sigma, noise_like(x, generator)), t0, **cond)
            total += _squared_error(back, x)
    return total / (len(settings.strengths) * settings.draws)


def anomaly_scores(fm: FlowMap, x: Tensor, sigma: float, settings: ScoreSettings, batch_size: int = 512,
                   seed: int = 0, full_square: bool = False, labels: Tensor | None = None) -> Tensor:
    """Scores [B] (float32, on the CPU) of inputs x [B, ...] in batches on the model's device;
    ``full_square``: whether the run can encode (needed by ``code``); ``labels`` [B]: the class
    each input is scored against (a class-conditional model; K, the null label: unconditional)."""
    settings.validate()
    if settings.kind == "code":
        check_invertible(full_square)
        return apply_batched(fm, lambda xb, **c: code_nll(encode(fm, xb, settings.steps, sigma, **c)), x, batch_size, labels)
    generator = torch.Generator().manual_seed(seed)
    return apply_batched(fm, lambda xb, **c: restoration_score(fm, xb, sigma, settings, generator, **c), x,
                         batch_size, labels)
