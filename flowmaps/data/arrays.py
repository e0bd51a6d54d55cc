"""Any array data: [N, ...] float arrays from ``.npy`` or ``.safetensors`` files (or a folder of
them), memory-mapped so that data larger than memory trains, normalised per channel.

Item shapes: [C, H, W] (images, latents: channel axis 0), [L, C] (sequences, spectrograms with
C bins: channel axis 1) or [D] (features: each its own channel). Optional integer labels: a
tensor named ``labels`` in a safetensors file, or ``<stem>.labels.npy`` beside a ``.npy`` file.
The data tensor of a safetensors file is the one named ``data``, else its only float tensor.

Normalisation: each channel is shifted and scaled to mean 0 and std 1 with statistics computed
once, at the start of training, from up to 20,000 items (seeded); they are stored in the run's
``run.json`` and undone on every output, so samples come back in the input's scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, MissingDataError

ARRAY_SUFFIXES = (".npy", ".safetensors")
SCALINGS = ("channel", "global", "none")
"""How array data is scaled to the model's (``data.scaling``): per channel, one scale, none."""


def channel_axis(item_shape: tuple[int, ...]) -> int:
    """The channel axis of one item (0 for [C, H, W] and [D], 1 for [L, C])."""
    return 1 if len(item_shape) == 2 else 0


@dataclass
class Normalization:
    """Per-channel mean and std [C] along ``axis`` of an item."""

    mean: list[float]
    std: list[float]
    axis: int

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        shape = [1] * x.ndim
        shape[1 + self.axis] = len(self.mean)
        return tuple(shape)

    def apply(self, x: Tensor) -> Tensor:
        """Data scale -> the model's: (x - mean) / std, x [B, ...]."""
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(self._shape(x))
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(self._shape(x))
        return (x - m) / s

    def invert(self, x: Tensor) -> Tensor:
        """The model's scale -> the data's: x std + mean, x [B, ...]."""
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(self._shape(x))
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(self._shape(x))
        return x * s + m

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "axis": self.axis}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        return cls([float(v) for v in d["mean"]], [float(v) for v in d["std"]], int(d["axis"]))


def _open(path: Path) -> tuple[Any, np.ndarray | None]:
    """(a memory-mapped [n, ...] array-like, labels or None) of one file."""
    if path.suffix == ".npy":
        data = np.load(path, mmap_mode="r")
        lab = path.with_name(path.stem + ".labels.npy")
        return data, (np.load(lab) if lab.is_file() else None)
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        keys = list(f.keys())
        labels = f.get_tensor("labels") if "labels" in keys else None
        floats = [k for k in keys if k != "labels"]
        name = "data" if "data" in keys else (floats[0] if len(floats) == 1 else None)
        if name is None:
            raise DataError(f"{str(path)!r} holds tensors {keys}: name the data tensor 'data' (and labels 'labels')")
    return _SafetensorsArray(path, name), labels


class _SafetensorsArray:
    """Row access to one tensor of a safetensors file without reading it whole."""

    def __init__(self, path: Path, name: str) -> None:
        from safetensors import safe_open

        self.path, self.name = path, name
        with safe_open(str(path), framework="np") as f:
            self.shape = tuple(f.get_slice(name).get_shape())

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="np") as f:
            sl = f.get_slice(self.name)
            return np.stack([sl[int(i)] for i in idx]) if len(idx) else np.empty((0, *self.shape[1:]), np.float32)


class ArrayFiles:
    """[N, ...] items from one file or a folder of files (concatenated in sorted order), read on
    demand; ``batch`` returns normalised float32 tensors like :class:`ImageData` does images.

    ``index`` selects a subset (see :meth:`subset`); ``statistics=False`` skips computing the
    normalisation (for reading shapes only: ``batch`` then needs ``normalization``);
    ``scaling``: one of :data:`SCALINGS` (``data.scaling``)."""

    def __init__(self, path: str | Path, normalization: Normalization | None = None, statistics: bool = True,
                 scaling: str = "channel") -> None:
        if scaling not in SCALINGS:
            raise DataError(f"data.scaling={scaling!r}: choose one of {', '.join(SCALINGS)}")
        self.scaling = scaling
        p = Path(path)
        files = sorted(f for f in p.iterdir() if f.suffix in ARRAY_SUFFIXES and not f.name.endswith(".labels.npy")) \
            if p.is_dir() else [p]
        if not p.exists() or not files:
            raise MissingDataError(f"data.path {str(p)!r}: no .npy or .safetensors arrays there (data.name=array)")
        self.parts, labels = [], []
        for f in files:
            if f.suffix not in ARRAY_SUFFIXES:
                raise DataError(f"data.path {str(f)!r}: expected a .npy or .safetensors file")
            data, lab = _open(f)
            if len(data.shape) < 2:
                raise DataError(f"{str(f)!r} holds shape {list(data.shape)}; expected [N, ...] items")
            if self.parts and tuple(data.shape[1:]) != tuple(self.parts[0].shape[1:]):
                raise DataError(f"{str(f)!r} holds items of shape {list(data.shape[1:])}, the first file "
                                 f"{list(self.parts[0].shape[1:])}: every file needs the same item shape")
            if lab is not None and len(lab) != data.shape[0]:
                raise DataError(f"{str(f)!r}: {len(lab)} labels for {data.shape[0]} items")
            self.parts.append(data)
            labels.append(lab)
        self.offsets = np.cumsum([0] + [d.shape[0] for d in self.parts])
        self.item_shape = tuple(int(v) for v in self.parts[0].shape[1:])
        if all(lab is not None for lab in labels):
            self.labels = np.concatenate(labels).astype(np.int64)
            self.num_classes = int(self.labels.max()) + 1
        else:
            self.labels = np.zeros(int(self.offsets[-1]), dtype=np.int64)
            self.num_classes = 0
        self.index: np.ndarray | None = None
        self.normalization = normalization if normalization is not None or not statistics else self.statistics()

    def __len__(self) -> int:
        return int(self.offsets[-1]) if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.item_shape

    def subset(self, index: np.ndarray) -> ArrayFiles:
        """The items at ``index`` (positions in this set), files left on disk."""
        out = object.__new__(ArrayFiles)
        out.__dict__.update(self.__dict__)
        index = np.asarray(index, dtype=np.int64)
        out.index = index if self.index is None else self.index[index]
        return out

    def all_labels(self) -> np.ndarray:
        return self.labels if self.index is None else self.labels[self.index]

    def raw(self, index: np.ndarray) -> np.ndarray:
        """float32 items [len(index), ...] in the data's own scale."""
        idx = np.asarray(index, dtype=np.int64)
        if self.index is not None:
            idx = self.index[idx]
        out = np.empty((len(idx), *self.item_shape), dtype=np.float32)
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        for k in np.unique(part):
            m = part == k
            local = idx[m] - self.offsets[k]
            order = np.argsort(local)
            rows = np.asarray(self.parts[k][local[order]], dtype=np.float32)
            out[np.flatnonzero(m)[order]] = rows
        if not np.isfinite(out).all():
            raise DataError("data.path: the arrays contain NaN or Inf values")
        return out

    def statistics(self, max_items: int = 20000, seed: int = 0) -> Normalization:
        """Per-channel mean and std from up to ``max_items`` items (seeded), std floored at 1e-6."""
        n = len(self)
        idx = np.sort(np.random.default_rng(seed).permutation(n)[: min(n, max_items)])
        x = self.raw(idx).astype(np.float64)
        axis = channel_axis(self.item_shape)
        reduce = tuple(i for i in range(x.ndim) if i != 1 + axis)
        mean, std = x.mean(axis=reduce), x.std(axis=reduce)
        if self.scaling == "global":
            mean, std = np.full_like(mean, x.mean()), np.full_like(std, x.std())
        elif self.scaling == "none":
            mean, std = np.zeros_like(mean), np.ones_like(std)
        return Normalization(mean.tolist(), np.maximum(std, 1e-6).tolist(), axis)

    def batch(self, index: np.ndarray | Tensor, flip: bool = False, generator: torch.Generator | None = None
              ) -> tuple[Tensor, Tensor]:
        """Normalised items [B, ...] (float32) and labels [B] for ``index`` (``flip`` is ignored)."""
        idx = np.asarray(index, dtype=np.int64)
        x = self.normalization.apply(torch.from_numpy(self.raw(idx)))
        return x, torch.from_numpy(self.all_labels()[idx])


class DecodedView:
    """Array data seen through a decoder (``data.decoder``, arrays in the data's scale -> images
    [B, C, H, W] in [-1, 1]): what image metrics (``fid``, ``kid``) of a latent run compare the
    decoded samples with. ``source`` is the run's array :class:`flowmaps.data.source.ArraySource`;
    ``stats_key`` names the decoder in cached reference statistics."""

    num_classes = 0

    def __init__(self, source: Any, decode: Callable[[Tensor], Tensor], stats_key: str, batch_size: int = 256) -> None:
        self.source, self.decode, self.stats_key, self.batch_size = source, decode, stats_key, batch_size
        self.size = source.size

    def images(self, arrays: Tensor) -> Tensor:
        """Arrays [n, ...] in the data's scale -> images [n, C, H, W] in [-1, 1], in batches."""
        return torch.cat([self.decode(arrays[i : i + self.batch_size]) for i in range(0, arrays.shape[0], self.batch_size)])

    def reference(self, n: int, seed: int = 0) -> Tensor:
        """Up to n training arrays (the seeded choice of the source's ``reference``), decoded: [n, C, H, W]."""
        return torch.cat(list(self.reference_chunks(n, seed=seed)))

    def reference_chunks(self, n: int, chunk: int = 1000, seed: int = 0) -> Iterator[Tensor]:
        """Up to n distinct training arrays (seeded as :meth:`ArraySource.reference` chooses them),
        decoded, ``chunk`` at a time: for statistics of more items than fit in memory as images."""
        idx = np.random.default_rng(seed).permutation(self.size)[:n]
        for i in range(0, len(idx), chunk):
            x = self.source.images.batch(idx[i : i + chunk])[0]
            yield self.images(self.source.normalization.invert(x))
