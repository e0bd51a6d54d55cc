"""Models trained outside flowmaps: velocity fields, as teachers (LMD / EMD) and initialisations,
and decoders that turn array samples (e.g. VAE latents) into images.

The contract: a file written by ``torch.jit.save`` (TorchScript) or ``torch.export.save`` (a
``.pt2`` ExportedProgram) whose module computes ``v = b(x, t)`` with

- x: [B, ...] float32, the data's shape (points [B, D], images [B, C, H, W] scaled to [-1, 1]);
- t: [B] float32 in [0, 1], **t = 0 noise, t = 1 data** (flowmaps' convention; a model trained
  with the opposite convention is wrapped as b(x, t) = -b_theirs(x, 1 - t) before export);
- v: the probability-flow velocity dx/dt of the linear interpolant I_t = (1 - t) x0 + t x1 with
  x0 ~ N(0, sigma^2 I), the same shape as x.

The base noise scale sigma is the run's own (``sigma`` in the config): it must be the one the
velocity was trained with.

A decoder (``data.decoder``) is a file of the same two kinds whose module maps arrays [B, ...] in
the data's own scale (as the array files hold them) to images [B, C, H, W] in [-1, 1], C = 1 or 3.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .errors import ConfigError

VelocityFn = Callable[[Tensor, Tensor], Tensor]


def load_module(path: str | Path, device: torch.device | str = "cpu", what: str = "velocity") -> torch.nn.Module:
    """The module in a TorchScript or torch.export file (frozen, eval mode), or ConfigError in one line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file {str(p)!r} does not exist; export one with torch.jit.save or torch.export.save")
    try:
        module = torch.export.load(str(p)).module().to(device)
    except Exception:  # not an ExportedProgram archive: try TorchScript
        try:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; files written with it still load
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(p), map_location=device)
        except Exception as e:  # any failure to read is the same user error: not such a file
            raise ConfigError(f"{str(p)!r} is neither a torch.export (torch.export.save) nor a TorchScript (torch.jit.save) "
                              f"file: {type(e).__name__}") from None
    if isinstance(module, torch.jit.ScriptModule):
        module.eval()  # an exported program's module is traced in the mode it was exported in
    for q in module.parameters():
        q.requires_grad_(False)
    return module


def load_velocity(path: str | Path, shape: tuple[int, ...], device: torch.device | str = "cpu") -> VelocityFn:
    """b(x, t) from a file (module doc), checked once on a batch of two points of ``shape``."""
    module = load_module(path, device)

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        return module(x.float(), t.float()).to(x.dtype)

    x = torch.zeros(2, *shape, device=device)
    try:
        v = velocity(x, torch.full((2,), 0.5, device=device))
    except Exception as e:
        raise ConfigError(f"velocity file {str(path)!r} failed on x {[2, *shape]}, t [2]: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if tuple(v.shape) != tuple(x.shape):
        raise ConfigError(f"velocity file {str(path)!r} returned {list(v.shape)} for x {list(x.shape)}; it must return v "
                          f"of x's shape")
    return velocity


def load_decoder(path: str | Path, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Callable[[Tensor], Tensor]:
    """arrays [B, *shape] (the data's scale) -> images [B, C, H, W] in [-1, 1], from a file (module
    doc), checked once on a batch of two zero arrays."""
    module = load_module(path, device, "decoder")

    @torch.no_grad()
    def decode(x: Tensor) -> Tensor:
        return module(x.float().to(device)).float().cpu().clamp(-1, 1)

    try:
        y = decode(torch.zeros(2, *shape))
    except Exception as e:
        raise ConfigError(f"decoder file {str(path)!r} failed on arrays {[2, *shape]}: {type(e).__name__}") from None
    if y.ndim != 4 or y.shape[0] != 2 or y.shape[1] not in (1, 3):
        raise ConfigError(f"decoder file {str(path)!r} returned {list(y.shape)} for {[2, *shape]}; it must return "
                          f"images [B, 1 or 3, H, W]")
    return decode
