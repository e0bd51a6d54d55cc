"""Flow matching on the diagonal s = t (paper eqs 3 and 12)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ..flow_map import FlowMap


def flow_matching_residual(fm: FlowMap, x_t: Tensor, t: Tensor, dx_t: Tensor, **cond: Any) -> Tensor:
    """Eq 12: r = v_{t,t}(I_t) - dI_t/dt, no stop-gradient.

    x_t, dx_t: [B, ...] the interpolant and its time derivative at t [B]. Returns r, shape of x_t.
    At the exact velocity b_t, E|r|^2 is the conditional variance E|dI_t - E[dI_t | I_t]|^2.
    """
    return fm.velocity(x_t, t, **cond) - dx_t
