"""The flow map X_{s,t}(x) = x + (t - s) v_{s,t}(x) (paper eq 6) around any network.

Time convention: t = 0 is noise, t = 1 is data; sampling moves from s to t > s.
Shapes: x is [B, ...] (e.g. [B, D] or [B, C, H, W]); s and t are per-sample times [B].
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Literal, Protocol

import torch
from torch import Tensor, nn

from .interpolants import expand_time
from .jvp import JVPBackend, jvp, resolve_backend

TimeInput = Literal["s_t", "s_dt"]


class FlowMapNet(Protocol):
    """What :class:`FlowMap` wraps: ``net(x [B, ...], a [B], b [B], **cond) -> v [B, ...]``.

    (a, b) is (s, t) or (s, t - s), as the flow map's ``time_input`` says. A network may also
    define ``log_weight(s [B], t [B]) -> [B]``, the learned loss weight w_{s,t} (paper eq 19).
    """

    def __call__(self, x: Tensor, a: Tensor, b: Tensor, **cond: Any) -> Tensor: ...


def _difference(dt: Tensor | None, ds: Tensor | None) -> Tensor | None:
    """The tangent of t - s from those of t and s (``None``: zero)."""
    if ds is None:
        return dt
    return -ds if dt is None else dt - ds


@contextlib.contextmanager
def dropout_disabled(module: nn.Module) -> Iterator[None]:
    """Temporarily put every dropout layer of ``module`` in eval mode (other layers untouched).

    The paper runs every off-diagonal evaluation, student and teacher, without dropout.
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.training]
    for m in layers:
        m.eval()
    try:
        yield
    finally:
        for m in layers:
            m.train()


def has_active_dropout(module: nn.Module) -> bool:
    """True when some dropout layer of ``module`` is in training mode with p > 0."""
    return any(
        isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0 for m in module.modules()
    )


class FlowMap(nn.Module):
    """X_{s,t}(x) = x + (t - s) v_{s,t}(x) with v given by ``net``.

    The parameterisation makes X_{s,s} = id exactly, and the diagonal v_{t,t} is the velocity b_t
    of the probability flow (paper eq 7), trained by flow matching.

    Args:
        net: a :class:`FlowMapNet`.
        time_input: "s_t" feeds the network (s, t) (the paper's checker MLP); "s_dt" feeds
            (s, t - s) (the paper's EDM2 UNet: "we embed s and (t-s) rather than s and t").
    """

    def __init__(self, net: nn.Module, time_input: TimeInput = "s_t") -> None:
        super().__init__()
        if time_input not in ("s_t", "s_dt"):
            raise ValueError(f"time_input must be 's_t' or 's_dt', got {time_input!r}")
        self.net = net
        self.time_input = time_input

    # -- evaluation -------------------------------------------------------------------------
    def v(self, x: Tensor, s: Tensor, t: Tensor, **cond: Any) -> Tensor:
        """The chord slope v_{s,t}(x), shape of x."""
        b = t - s if self.time_input == "s_dt" else t
        return self.net(x, s, b, **cond)

    def X(self, x: Tensor, s: Tensor, t: Tensor, **cond: Any) -> Tensor:
        """The map X_{s,t}(x) = x + (t - s) v_{s,t}(x), shape of x."""
        return x + expand_time(t - s, x) * self.v(x, s, t, **cond)

    def forward(self, x: Tensor, s: Tensor, t: Tensor, **cond: Any) -> Tensor:
        return self.X(x, s, t, **cond)

    def velocity(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        """The learned velocity b_t(x) = v_{t,t}(x), shape of x."""
        return self.v(x, t, t, **cond)

    def log_weight(self, s: Tensor, t: Tensor) -> Tensor | None:
        """The network's learned log loss weight w_{s,t} [B], or None when it has no such head."""
        head = getattr(self.net, "log_weight", None)
        return None if head is None else head(s, t)

    def shared_weights(self) -> contextlib.AbstractContextManager:
        """A block in which the network may reuse per-step weight computations (its own
        ``shared_weights()`` when it has one, e.g. EDM2's normalised weights)."""
        hook = getattr(self.net, "shared_weights", None)
        return hook() if hook is not None else contextlib.nullcontext()

    # -- derivatives ------------------------------------------------------------------------
    def has_explicit_tangents(self) -> bool:
        """Whether the network computes its own tangents (``forward_jvp``, the ``explicit`` backend)."""
        return callable(getattr(self.net, "forward_jvp", None))

    def jvp_backend(self, backend: JVPBackend) -> str:
        """The concrete backend for ``backend`` here and now: ``auto`` is ``explicit`` for a network
        with explicit tangents, else :func:`flowmaps.jvp.resolve_backend`'s choice."""
        if backend == "auto":
            return "explicit" if self.has_explicit_tangents() else resolve_backend("auto")
        if backend == "explicit" and not self.has_explicit_tangents():
            raise ValueError(f"jvp_backend='explicit' needs a network with explicit tangents (forward_jvp); "
                             f"{type(self.net).__name__} has none: use 'auto' or 'func'")
        return backend

    def v_jvp(
        self, x: Tensor, s: Tensor, t: Tensor, dx: Tensor | None, ds: Tensor | None, dt: Tensor | None,
        backend: JVPBackend = "auto", **cond: Any,
    ) -> tuple[Tensor, Tensor]:
        """(v_{s,t}(x), its derivative along (dx [B, ...], ds [B], dt [B])); ``None`` is a zero tangent."""
        backend = self.jvp_backend(backend)
        if backend == "explicit":
            if self.time_input == "s_dt":
                v, dv = self.net.forward_jvp(x, s, t - s, dx, ds, _difference(dt, ds), **cond)
            else:
                v, dv = self.net.forward_jvp(x, s, t, dx, ds, dt, **cond)
            return v, torch.zeros_like(v) if dv is None else dv.to(v.dtype)
        names = [n for n, d in (("x", dx), ("s", ds), ("t", dt)) if d is not None]
        given = {"x": x, "s": s, "t": t}

        def fn(*moving: Tensor) -> Tensor:
            args = {**given, **dict(zip(names, moving))}
            return self.v(args["x"], args["s"], args["t"], **cond)

        tangents = {"x": dx, "s": ds, "t": dt}
        return jvp(fn, [given[n] for n in names], [tangents[n] for n in names], backend)  # type: ignore[arg-type]

    def X_jvp(
        self, x: Tensor, s: Tensor, t: Tensor, dx: Tensor | None, ds: Tensor | None, dt: Tensor | None,
        backend: JVPBackend = "auto", **cond: Any,
    ) -> tuple[Tensor, Tensor]:
        """(X_{s,t}(x), its derivative along (dx, ds, dt)): dX = dx + (dt - ds) v + (t - s) dv."""
        v, dv = self.v_jvp(x, s, t, dx, ds, dt, backend, **cond)
        gap = expand_time(t - s, x)
        X = x + gap * v
        dX = gap * dv
        dgap = _difference(dt, ds)
        if dgap is not None:
            dX = dX + expand_time(dgap, x) * v
        if dx is not None:
            dX = dX + dx
        return X, dX

    def X_and_dt(
        self, x: Tensor, s: Tensor, t: Tensor, backend: JVPBackend = "auto", **cond: Any
    ) -> tuple[Tensor, Tensor]:
        """(X_{s,t}(x), d/dt X_{s,t}(x)) from one JVP in t (tangent 1 on t; x, s fixed)."""
        return self.X_jvp(x, s, t, None, None, torch.ones_like(t), backend, **cond)

    def v_and_dt(
        self, x: Tensor, s: Tensor, t: Tensor, backend: JVPBackend = "auto", **cond: Any
    ) -> tuple[Tensor, Tensor]:
        """(v_{s,t}(x), d/dt v_{s,t}(x)) from one JVP in t."""
        return self.v_jvp(x, s, t, None, None, torch.ones_like(t), backend, **cond)

    def X_and_ds(
        self, x: Tensor, s: Tensor, t: Tensor, backend: JVPBackend = "auto", **cond: Any
    ) -> tuple[Tensor, Tensor]:
        """(X_{s,t}(x), d/ds X_{s,t}(x)) from one JVP in s (x, t fixed)."""
        return self.X_jvp(x, s, t, None, torch.ones_like(s), None, backend, **cond)

    def X_and_dx(
        self, x: Tensor, s: Tensor, t: Tensor, w: Tensor, backend: JVPBackend = "auto", **cond: Any
    ) -> tuple[Tensor, Tensor]:
        """(X_{s,t}(x), grad_x X_{s,t}(x) w): a spatial JVP with tangent w (shape of x)."""
        return self.X_jvp(x, s, t, w, None, None, backend, **cond)

    def v_and_total(
        self,
        x: Tensor,
        s: Tensor,
        t: Tensor,
        dx: Tensor,
        ds: Tensor,
        dt: Tensor,
        backend: JVPBackend = "auto",
        **cond: Any,
    ) -> tuple[Tensor, Tensor]:
        """(v_{s,t}(x), directional derivative of v along (dx, ds, dt)) from one fused JVP."""
        return self.v_jvp(x, s, t, dx, ds, dt, backend, **cond)
