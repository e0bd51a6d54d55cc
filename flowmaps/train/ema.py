"""Moving averages of the weights: fixed decays (optionally warmed up) and EDM2's power-function
EMA (Karras et al. 2024), several at once.

An average is named by a string:

- ``"0.999"``: a fixed decay d, ema <- d ema + (1 - d) theta after every step. With warm-up the
  decay at update k (1-based) is min(d, (1 + k) / (10 + k)), so early, bad weights are forgotten.
- ``"sigma_rel=0.05"``: a power-function EMA whose averaging profile over the past has relative
  standard deviation 0.05 of the run's length *at every step*: ema <- beta_k ema + (1 - beta_k)
  theta with beta_k = (1 - 1/k)^(gamma + 1), gamma solved from sigma_rel. It never holds on to
  the initial weights, whatever the run's length.
- ``"raw"`` (or 0): the trained weights themselves.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..averages import ema_name, power_name, sigma_rel_to_gamma


class EMA:
    """Several averages of ``module``'s floating-point state, updated after every optimizer step.

    decays: fixed decays; sigma_rels: power-function EMAs; warmup: warm the fixed decays up.
    ``names`` lists the averages in order; ``state(name)`` gives one as a state dict.
    """

    def __init__(self, module: nn.Module, decays: list[float] = (), sigma_rels: list[float] = (),  # type: ignore[assignment]
                 warmup: bool = False) -> None:
        self.decays = [float(d) for d in decays]
        self.sigma_rels = [float(s) for s in sigma_rels]
        self.gammas = {power_name(s): sigma_rel_to_gamma(s) for s in self.sigma_rels}
        self.warmup = bool(warmup)
        self.count = 0
        self.names = [ema_name(d) for d in self.decays] + list(self.gammas)
        self.shadow: dict[str, dict[str, Tensor]] = {
            n: {k: v.detach().clone() for k, v in module.state_dict().items()} for n in self.names
        }

    def beta(self, name: str) -> float:
        """The decay applied at the current update (``count`` already advanced)."""
        k = self.count
        if name in self.gammas:
            return (1.0 - 1.0 / k) ** (self.gammas[name] + 1.0)
        d = float(name)
        return min(d, (1.0 + k) / (10.0 + k)) if self.warmup else d

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.count += 1
        state = module.state_dict()
        for name, shadow in self.shadow.items():
            beta = self.beta(name)
            for k, v in state.items():
                if v.is_floating_point():
                    shadow[k].mul_(beta).add_(v.detach(), alpha=1 - beta)
                else:
                    shadow[k].copy_(v)

    def state(self, name: float | str) -> dict[str, Tensor]:
        key = ema_name(name)
        if key not in self.shadow:
            raise KeyError(f"EMA {key} is not tracked; tracked: {', '.join(self.names) or 'none'}")
        return self.shadow[key]

    def power_states(self) -> dict[str, dict[str, Tensor]]:
        """The power-function averages (what post-hoc reconstruction snapshots)."""
        return {n: self.shadow[n] for n in self.gammas}

    def flat(self) -> dict[str, Tensor]:
        """All averages in one flat dict, keys 'NAME/param' (for safetensors)."""
        return {f"{n}/{k}": v for n, s in self.shadow.items() for k, v in s.items()}

    def load_flat(self, flat: dict[str, Tensor], count: int | None = None) -> None:
        for n, s in self.shadow.items():
            for k in s:
                s[k].copy_(flat[f"{n}/{k}"])
        if count is not None:
            self.count = int(count)


def flat_names(flat: dict[str, Tensor]) -> list[str]:
    """The EMA names present in a flat dict written by :meth:`EMA.flat`."""
    return sorted({k.split("/", 1)[0] for k in flat})


def unflatten(flat: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    prefix = name + "/"
    return {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}


def _log_profile_dot(t_a: float, g_a: float, t_b: float, g_b: float) -> float:
    """log <p_a, p_b> for power profiles p(tau) = (g + 1) tau^g / t^(g + 1) on [0, t]."""
    tmin = min(t_a, t_b)
    return (math.log(g_a + 1) + math.log(g_b + 1) - math.log(g_a + g_b + 1)
            + (g_a + g_b + 1) * math.log(tmin) - (g_a + 1) * math.log(t_a) - (g_b + 1) * math.log(t_b))


def posthoc_coefficients(snapshots: list[tuple[int, float]], step: int, sigma_rel: float) -> np.ndarray:
    """Weights c_i such that sum_i c_i snapshot_i best matches (least squares on profiles) the
    power EMA ``sigma_rel`` at ``step``; ``snapshots`` are (step, sigma_rel) pairs.

    Each snapshot averages the past with profile p_i(tau) ~ tau^gamma_i on [0, step_i]; the
    target's profile is solved for in their span (Karras et al. 2024, section 3.2).
    """
    if not snapshots:
        raise ValueError("post-hoc EMA needs at least one snapshot")
    g = [sigma_rel_to_gamma(s) for _, s in snapshots]
    t = [float(st) for st, _ in snapshots]
    g_r, t_r = sigma_rel_to_gamma(sigma_rel), float(step)
    n = len(snapshots)
    A = np.array([[math.exp(_log_profile_dot(t[i], g[i], t[j], g[j])) for j in range(n)] for i in range(n)])
    b = np.array([math.exp(_log_profile_dot(t[i], g[i], t_r, g_r)) for i in range(n)])
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    return coef
