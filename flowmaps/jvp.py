"""Jacobian-vector products, three interchangeable backends.

``jvp(fn, primals, tangents, backend)`` returns ``(fn(*primals), d/de fn(primals + e * tangents))``.

Backends (a flow map also has ``"explicit"``, its network's own tangent pass, see
:meth:`flowmaps.FlowMap.v_jvp`):
- ``"auto"`` (the default): ``"func"`` when gradients are being recorded (a loss will be
  backpropagated through the JVP), ``"forward_ad"`` under ``torch.no_grad()``, where it is the
  faster of the two and PyTorch's softmax issue (pytorch#162350) cannot arise.
- ``"func"``: :func:`torch.func.jvp` (forward-mode AD). The output tangent stays differentiable
  with respect to any parameter ``fn`` closes over, so a loss on it can be backpropagated
  (reverse-over-forward, the paper's LSD gradient).
- ``"forward_ad"``: :mod:`torch.autograd.forward_ad` dual tensors; same semantics.
- ``"fd"``: central finite differences, ``(fn(p + h v) - fn(p - h v)) / 2h``: three evaluations,
  differentiable, approximate (error O(h^2) + O(eps/h)); useful where an op has no forward-mode rule.

Fused scaled-dot-product-attention kernels have no forward-mode derivative, so the AD backends run
``fn`` with attention restricted to the math path (:func:`math_attention`).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor
from torch.autograd import forward_ad
from torch.nn.attention import SDPBackend, sdpa_kernel

JVPBackend = Literal["auto", "explicit", "func", "forward_ad", "fd"]
JVP_BACKENDS: tuple[str, ...] = ("func", "forward_ad", "fd")
"""The backends for any function; ``"auto"`` picks one of the first two per call."""
MAP_JVP_BACKENDS: tuple[str, ...] = ("explicit", *JVP_BACKENDS)
"""The backends of a flow map's derivatives (:meth:`flowmaps.FlowMap.v_jvp`): ``"explicit"`` is the
network's own tangent pass (``forward_jvp``), which ``"auto"`` picks wherever the network has one."""


@contextlib.contextmanager
def math_attention() -> Iterator[None]:
    """Restrict F.scaled_dot_product_attention to its math path (which has forward-mode AD)."""
    with sdpa_kernel([SDPBackend.MATH]):
        yield


@contextlib.contextmanager
def _quiet_jit_deprecation() -> Iterator[None]:
    # torch.func's first call touches a deprecated torch.jit helper and warns once; it is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\..*")
        yield


def fd_step(dtype: torch.dtype) -> float:
    """Default central-difference step: about eps^(1/3), which balances truncation and round-off."""
    return float(torch.finfo(dtype).eps) ** (1.0 / 3.0)


def resolve_backend(backend: str) -> str:
    """The concrete backend ``"auto"`` stands for here and now (see the module docstring)."""
    if backend == "auto":
        return "func" if torch.is_grad_enabled() else "forward_ad"
    return backend


def jvp(
    fn: Callable[..., Tensor],
    primals: Sequence[Tensor],
    tangents: Sequence[Tensor],
    backend: JVPBackend = "auto",
    fd_eps: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Evaluate ``fn(*primals)`` and its directional derivative along ``tangents``.

    Args:
        fn: a function of tensors returning one tensor.
        primals, tangents: tuples of tensors of matching shapes.
        backend: "auto", "func", "forward_ad" or "fd" (see module docstring).
        fd_eps: finite-difference step for "fd" (default ``fd_step(dtype)`` of the first primal).
    Returns:
        (output, output tangent), both shaped like ``fn``'s output.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    backend = resolve_backend(backend)  # type: ignore[assignment]
    if len(primals) != len(tangents):
        raise ValueError(f"jvp got {len(primals)} primals but {len(tangents)} tangents")
    for p, v in zip(primals, tangents):
        if p.shape != v.shape:
            raise ValueError(f"jvp tangent shape {tuple(v.shape)} does not match primal {tuple(p.shape)}")
    if backend == "func":
        with math_attention(), _quiet_jit_deprecation():
            return torch.func.jvp(fn, primals, tangents)
    if backend == "forward_ad":
        with math_attention(), forward_ad.dual_level():
            duals = [forward_ad.make_dual(p, v) for p, v in zip(primals, tangents)]
            out = forward_ad.unpack_dual(fn(*duals))
            if out.tangent is None:  # output does not depend on the inputs
                return out.primal, torch.zeros_like(out.primal)
            return out.primal, out.tangent
    if backend == "fd":
        h = fd_eps if fd_eps is not None else fd_step(primals[0].dtype)
        plus = fn(*[p + h * v for p, v in zip(primals, tangents)])
        minus = fn(*[p - h * v for p, v in zip(primals, tangents)])
        return fn(*primals), (plus - minus) / (2 * h)
    raise ValueError(f"unknown JVP backend {backend!r}; choose one of {['auto', *JVP_BACKENDS]}")


@dataclass
class JVPCheck:
    """Result of :func:`check_jvp`: relative error of each backend against a float64 reference."""

    reference: str
    relative_error: dict[str, float]

    def worst(self) -> float:
        return max(self.relative_error.values())

    def __str__(self) -> str:
        rows = ", ".join(f"{k}: {v:.2e}" for k, v in self.relative_error.items())
        return f"JVP relative error vs {self.reference}: {rows}"


def relative_error(a: Tensor, b: Tensor) -> float:
    """||a - b|| / max(||b||, tiny), in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def check_jvp(
    fn: Callable[..., Tensor],
    primals: Sequence[Tensor],
    tangents: Sequence[Tensor],
    backends: Sequence[str] = JVP_BACKENDS,
    fd_eps: float = 1e-6,
) -> JVPCheck:
    """Compare every JVP backend on ``fn`` against central differences in float64.

    ``fn`` should be evaluated in float64 for a tight reference: cast the network with
    ``.double()`` first, or pass a copy. The reference uses step ``fd_eps`` (truncation error
    O(fd_eps^2)); each backend is run with its defaults.
    Returns a :class:`JVPCheck` with the relative error per backend.
    """
    primals = tuple(p.double() for p in primals)
    tangents = tuple(v.double() for v in tangents)
    with torch.no_grad():
        _, ref = jvp(fn, primals, tangents, backend="fd", fd_eps=fd_eps)
        errors = {}
        for name in backends:
            _, out = jvp(fn, primals, tangents, backend=name)  # type: ignore[arg-type]
            errors[name] = relative_error(out, ref)
    return JVPCheck(reference=f"central differences (h={fd_eps:g}, float64)", relative_error=errors)
