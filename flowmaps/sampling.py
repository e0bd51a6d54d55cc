"""Samplers: N-step flow-map sampling and ODE baselines on the model's own diagonal velocity.

Time convention: t = 0 is noise, t = 1 is data. A grid is a 1-D tensor of times [N + 1];
a decreasing grid runs the map backwards (data -> noise), valid for maps trained on the full square.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from .flow_map import FlowMap
from .guidance import class_condition, guided_velocity, null_label

ODESolver = Literal["euler", "heun", "rk4"]
ODE_SOLVERS: dict[str, int] = {"euler": 1, "heun": 2, "rk4": 4}
"""Solver name -> network evaluations per step."""


def uniform_grid(steps: int, start: float = 0.0, end: float = 1.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """The paper's grid t_k = start + k (end - start) / N, k = 0..N: [N + 1]."""
    if steps < 1:
        raise ValueError(f"the number of steps must be at least 1, got {steps}")
    return torch.linspace(start, end, steps + 1, dtype=dtype)


def as_grid(grid: Sequence[float] | Tensor) -> Tensor:
    """Validate a user time grid: 1-D, at least two points, strictly monotone, inside [0, 1]."""
    g = torch.as_tensor(grid, dtype=torch.float64).flatten()
    if g.numel() < 2:
        raise ValueError("a time grid needs at least two points")
    steps = g[1:] - g[:-1]
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        raise ValueError("a time grid must be strictly increasing (noise -> data) or strictly decreasing")
    if float(g.min()) < 0 or float(g.max()) > 1:
        raise ValueError("grid times must lie in [0, 1]")
    return g


def _times(x: Tensor, value: float) -> Tensor:
    return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)


@torch.no_grad()
def sample_map(fm: FlowMap, x: Tensor, grid: Sequence[float] | Tensor | int, **cond: Any) -> Tensor:
    """Compose the map over a grid: x <- X_{t_k, t_{k+1}}(x). NFE = len(grid) - 1.

    x: [B, ...] the starting points (noise x0 = sigma eps for the forward grid);
    grid: a number of steps N (uniform grid on [0, 1]) or explicit times.
    """
    g = uniform_grid(grid) if isinstance(grid, int) else as_grid(grid)
    for a, b in zip(g[:-1].tolist(), g[1:].tolist()):
        x = fm.X(x, _times(x, a), _times(x, b), **cond)
    return x


@torch.no_grad()
def sample_ode(
    fm: FlowMap, x: Tensor, grid: Sequence[float] | Tensor | int, solver: ODESolver = "euler",
    guidance: float | None = None, **cond: Any,
) -> Tensor:
    """Integrate dx/dt = v_{t,t}(x), the model's own diagonal velocity, over the grid.

    The flow-matching baseline of the same network: "euler" (1 NFE per step), "heun" (2), "rk4" (4).
    ``guidance`` alpha (a class-conditional model, labels in ``cond["y"]``): ordinary
    classifier-free guidance, v(null) + alpha (v(y) - v(null)), at twice the network calls.
    """
    if solver not in ODE_SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; choose one of {list(ODE_SOLVERS)}")
    g = uniform_grid(grid) if isinstance(grid, int) else as_grid(grid)
    null = null_label(fm) if guidance is not None else 0

    def f(y: Tensor, tt: float) -> Tensor:
        if guidance is not None:
            return guided_velocity(fm, y, _times(y, tt), cond["y"], float(guidance), null)
        return fm.velocity(y, _times(y, tt), **cond)

    for a, b in zip(g[:-1].tolist(), g[1:].tolist()):
        h = b - a
        k1 = f(x, a)
        if solver == "euler":
            x = x + h * k1
        elif solver == "heun":
            k2 = f(x + h * k1, b)
            x = x + 0.5 * h * (k1 + k2)
        else:
            k2 = f(x + 0.5 * h * k1, a + 0.5 * h)
            k3 = f(x + 0.5 * h * k2, a + 0.5 * h)
            k4 = f(x + h * k3, b)
            x = x + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    return x


def sample(
    fm: FlowMap,
    x: Tensor,
    steps: int,
    solver: Literal["map", "euler", "heun", "rk4"] = "map",
    labels: Tensor | None = None,
    guidance: float | None = None,
    **cond: Any,
) -> Tensor:
    """Noise -> data with ``steps`` uniform steps, by the map ("map") or an ODE solver.

    A class-conditional model takes ``labels`` [B] (0..K-1; K: unconditional) and a guidance
    scale: the guided map's input alpha (one call per step; :func:`flowmaps.guidance.class_condition`)
    or, for an ODE solver, classifier-free guidance (two calls per step). None: no guidance.
    """
    if labels is not None:
        if solver == "map":
            return sample_map(fm, x, steps, **cond, **class_condition(fm, labels, guidance))
        return sample_ode(fm, x, steps, solver, guidance, **cond, **class_condition(fm, labels))  # type: ignore[arg-type]
    if guidance is not None:
        raise ValueError("guidance needs class labels: pass labels")
    if solver == "map":
        return sample_map(fm, x, steps, **cond)
    return sample_ode(fm, x, steps, solver, **cond)  # type: ignore[arg-type]


def apply_batched(fm: FlowMap, fn: Any, x: Tensor, batch_size: int, labels: Tensor | None = None,
                  guidance: float | None = None, aux: Tensor | None = None) -> Tensor:
    """``fn(x_batch, **cond)`` (or ``fn(x_batch, aux_batch, **cond)``) over batches of x [B, ...]
    on the model's device, results as float32 on the CPU, concatenated. ``labels`` [B] (a
    class-conditional model) become each batch's conditioning at scale ``guidance``
    (:func:`flowmaps.guidance.class_condition`); ``aux`` [B, ...] is sliced like x."""
    device = next(fm.parameters()).device
    out = []
    for i in range(0, x.shape[0], batch_size):
        cond = class_condition(fm, labels[i : i + batch_size].to(device), guidance) if labels is not None else {}
        args = (x[i : i + batch_size].to(device),) + (() if aux is None else (aux[i : i + batch_size].to(device),))
        out.append(fn(*args, **cond).float().cpu())
    return torch.cat(out)
