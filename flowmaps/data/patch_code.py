"""A fixed linear code of picture patches, fitted from the training pictures in seconds.

A picture [C, H, W] in [-1, 1] is cut into p x p patches (space-to-depth: [C p p, H/p, W/p],
channel index c p^2 + i p + j), each patch less the patches' mean is written in an orthonormal
basis of R^{C p p}, and the leading K coefficients are kept: the code [K, H/p, W/p]. Decoding
is the transpose, so decode(encode(x)) is the orthogonal projection of x's patches onto the kept
directions: exact when K = C p p (tests).

- ``pca``: the basis is the patches' principal directions, most variance first: the most energy
  for any K (by construction, on the training patches).
- ``dct``: the 2-D DCT-II basis per channel (JPEG's, DCTdiff's), ordered by the training patches'
  variance along each: fixed, so no fitting beyond the order.

K keeps ``energy`` of the patches' variance (default 95%). ``scaling``: ``coefficient`` divides
each kept coefficient by its training standard deviation (every channel of the code has unit
variance: low-variance detail weighs as much as colour in the loss), ``none`` keeps them as
they are (the loss weighs each by its energy; DCTdiff's finding is that the choice changes what
is generated first); a tested setting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import DataError

CODE_KINDS = ("pca", "dct")
CODE_SCALINGS = ("coefficient", "none")
MAX_FIT_PATCHES = 200_000


def dct_matrix(p: int) -> np.ndarray:
    """The orthonormal DCT-II matrix [p, p] (rows: frequencies)."""
    k, n = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    m = np.cos(np.pi * (2 * n + 1) * k / (2 * p)) * math.sqrt(2.0 / p)
    m[0] /= math.sqrt(2.0)
    return m


def dct_basis(p: int, channels: int) -> np.ndarray:
    """Orthonormal rows [C p p, C p p]: the 2-D DCT-II of each channel's p x p block."""
    d2 = np.kron(dct_matrix(p), dct_matrix(p))  # [p p, p p]: (k1, k2) x (i, j)
    return np.kron(np.eye(channels), d2)


@dataclass
class PatchCode:
    """The code of the module docstring: ``patch`` p, ``channels`` C, ``kind``, the patches'
    ``mean`` [C p p], the kept ``basis`` rows [K, C p p] (orthonormal), the per-coefficient
    ``scale`` [K] and the share of the training patches' variance kept, ``energy``."""

    patch: int
    channels: int
    kind: str
    mean: Tensor
    basis: Tensor
    scale: Tensor
    energy: float

    @property
    def size(self) -> int:
        """K, the code's channels."""
        return self.basis.shape[0]

    def code_shape(self, resolution: int) -> tuple[int, int, int]:
        return (self.size, resolution // self.patch, resolution // self.patch)

    def encode(self, x: Tensor) -> Tensor:
        """Codes [B, K, H/p, W/p] of pictures x [B, C, H, W] (H, W multiples of p)."""
        patches = F.pixel_unshuffle(x.float(), self.patch) - self.mean.view(1, -1, 1, 1)
        return torch.einsum("kp,bphw->bkhw", self.basis, patches) / self.scale.view(1, -1, 1, 1)

    def decode(self, z: Tensor) -> Tensor:
        """Pictures [B, C, H, W] of codes z [B, K, H/p, W/p]."""
        patches = torch.einsum("kp,bkhw->bphw", self.basis, z.float() * self.scale.view(1, -1, 1, 1))
        return F.pixel_shuffle(patches + self.mean.view(1, -1, 1, 1), self.patch)

    def as_tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "basis": self.basis, "scale": self.scale,
                "meta": torch.tensor([self.patch, self.channels, CODE_KINDS.index(self.kind)], dtype=torch.int64),
                "energy": torch.tensor([self.energy], dtype=torch.float64)}

    @classmethod
    def from_tensors(cls, d: dict[str, Tensor]) -> PatchCode:
        patch, channels, kind = (int(v) for v in d["meta"].tolist())
        return cls(patch, channels, CODE_KINDS[kind], d["mean"].float(), d["basis"].float(), d["scale"].float(),
                   float(d["energy"][0]))

    def decoder(self) -> nn.Module:
        """:meth:`decode` as a module (TorchScript-able; ``data.decoder``)."""
        return PatchDecoder(self)


class PatchDecoder(nn.Module):
    """Codes [B, K, h, w] -> pictures [B, C, h p, w p] (:meth:`PatchCode.decode`)."""

    def __init__(self, code: PatchCode) -> None:
        super().__init__()
        self.patch = code.patch
        self.register_buffer("mean", code.mean.clone())
        self.register_buffer("basis", code.basis.clone())
        self.register_buffer("scale", code.scale.clone())

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 2:  # a whole-picture code, stored flat [B, K]
            z = z[:, :, None, None]
        patches = torch.einsum("kp,bkhw->bphw", self.basis, z.float() * self.scale.view(1, -1, 1, 1))
        return F.pixel_shuffle(patches + self.mean.view(1, -1, 1, 1), self.patch)


def fit_patch_code(images: Tensor, patch: int = 4, energy: float = 0.95, kind: str = "pca",
                   scaling: str = "coefficient", seed: int = 0, size: int | None = None) -> PatchCode:
    """The code of pictures [N, C, H, W] in [-1, 1] (a seeded sample of at most
    :data:`MAX_FIT_PATCHES` patches): ``size`` K coefficients, else the fewest that keep
    ``energy`` of the variance."""
    if kind not in CODE_KINDS:
        raise DataError(f"unknown patch code {kind!r}; choose one of {', '.join(CODE_KINDS)}")
    if scaling not in CODE_SCALINGS:
        raise DataError(f"unknown code scaling {scaling!r}; choose one of {', '.join(CODE_SCALINGS)}")
    n, c, h, w = images.shape
    if h % patch or w % patch:
        raise DataError(f"pictures of {h} x {w} do not split into {patch} x {patch} patches; choose a patch size that divides both")
    if not 0 < energy <= 1:
        raise DataError(f"the code's energy must lie in (0, 1], got {energy}")
    patches = F.pixel_unshuffle(images.double(), patch).permute(0, 2, 3, 1).reshape(-1, c * patch * patch)
    if len(patches) > MAX_FIT_PATCHES:
        patches = patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(seed))[:MAX_FIT_PATCHES]]
    mean = patches.mean(0)
    centred = patches - mean
    dof = max(len(centred) - 1, 1)
    if kind == "pca" and len(centred) < centred.shape[1]:
        # fewer patches than dimensions (a whole-picture code): the SVD of the patches, not the
        # [D, D] covariance; the directions beyond the patches' span carry no training variance.
        # With many patches the covariance's eigh is far faster than their SVD: two branches.
        _, sv, vt = torch.linalg.svd(centred, full_matrices=False)
        basis, var = vt, sv.square() / dof
    elif kind == "pca":
        var, vecs = torch.linalg.eigh(centred.T @ centred / dof)
        order = torch.argsort(var, descending=True)
        basis, var = vecs[:, order].T, var[order].clamp_min(0)
    else:
        cov = centred.T @ centred / dof
        full = torch.from_numpy(dct_basis(patch, c))
        var = torch.einsum("kp,pq,kq->k", full, cov, full).clamp_min(0)
        order = torch.argsort(var, descending=True)
        basis, var = full[order], var[order]
    share = torch.cumsum(var, 0) / var.sum().clamp_min(1e-12)
    k = int(size) if size is not None else int(torch.searchsorted(share, torch.tensor(energy - 1e-9, dtype=share.dtype)).item()) + 1
    k = max(1, min(k, basis.shape[0]))
    scale = var[:k].sqrt().clamp_min(1e-4) if scaling == "coefficient" else torch.ones(k, dtype=torch.float64)
    return PatchCode(patch, c, kind, mean.float(), basis[:k].float().contiguous(), scale.float(), float(share[k - 1]))
