"""Where training batches come from. Every batch is a pure function of (seed, step, shard), so
resuming is exact and data-parallel ranks (or accumulation micro-batches) see disjoint data."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .arrays import ArrayFiles
from .columns import TableTransform, detect_columns
from .images import IMAGE_DATASETS, ImageData, load_images
from .tables import RawTable, check_class_labels, label_column_index, read_table
from .toy2d import LABELLED_TOY, TOY, load_table


def stream_generator(seed: int, step: int, shard: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded from (seed, step, shard, stream) through numpy's SeedSequence."""
    state = np.random.SeedSequence([seed, step, shard, stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class DataSource(ABC):
    """Batches x [B, ...] (float32) with labels y [B] (int64; zeros when unlabelled)."""

    shape: tuple[int, ...]
    num_classes: int = 0
    name: str = ""

    @abstractmethod
    def batch(self, seed: int, step: int, shard: int, num_shards: int, per_shard: int) -> tuple[Tensor, Tensor]:
        """The ``shard``-th slice (of ``num_shards``) of the global batch at ``step``."""

    @abstractmethod
    def reference(self, n: int, seed: int = 0) -> Tensor:
        """Up to n data points for statistics (sigma='adaptive', evaluation references)."""


class SamplerSource(DataSource):
    """An infinite 2-D distribution: fresh draws each step. A labelled sampler returns
    (points, labels in 0..num_classes-1); a plain one returns points (labels are zeros)."""

    def __init__(self, name: str, sampler: Callable[[int, torch.Generator], Tensor | tuple[Tensor, Tensor]],
                 num_classes: int = 0) -> None:
        self.name, self.sampler, self.num_classes = name, sampler, num_classes
        self.shape = tuple(self._draw(2, torch.Generator().manual_seed(0))[0].shape[1:])

    def _draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        out = self.sampler(n, generator)
        return out if isinstance(out, tuple) else (out, torch.zeros(n, dtype=torch.long))

    def batch(self, seed, step, shard, num_shards, per_shard):
        return self._draw(per_shard, stream_generator(seed, step, shard, 1))

    def reference(self, n, seed=0):
        return self._draw(n, torch.Generator().manual_seed(seed + 7919))[0]


class ArraySource(DataSource):
    """A finite data set, visited in seeded random order epoch after epoch (no repeats within one):
    points [N, D], or an indexable set with ``batch`` (images, :class:`flowmaps.data.arrays.ArrayFiles`)."""

    def __init__(self, name: str, data: ImageData | Tensor, flip: bool = False, labels: Tensor | None = None) -> None:
        self.name, self.flip = name, flip
        self.labels = labels
        if isinstance(data, Tensor):
            self.points: Tensor | None = data.float()
            self.images = None
            self.size, self.shape = data.shape[0], tuple(data.shape[1:])
            self.num_classes = int(labels.max()) + 1 if labels is not None else 0
        else:
            self.points, self.images = None, data
            self.size, self.shape, self.num_classes = len(data), data.shape, data.num_classes
        self.full_images = self.images  # the whole labelled set (the project classifier trains on it)
        self.columns: TableTransform | None = None  # a table's per-column transform (points held in the model's scale)
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    @property
    def normalization(self) -> Any:
        """Array data's per-channel :class:`flowmaps.data.arrays.Normalization` (None otherwise)."""
        return getattr(self.images, "normalization", None)

    def _perm(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            self._perm_cache[key] = np.random.default_rng([seed, epoch, 31337]).permutation(self.size)
        return self._perm_cache[key]

    def indices(self, seed: int, step: int, global_batch: int) -> np.ndarray:
        pos = np.arange(step * global_batch, (step + 1) * global_batch, dtype=np.int64)
        epochs, offs = pos // self.size, pos % self.size
        out = np.empty_like(pos)
        for e in np.unique(epochs):
            m = epochs == e
            out[m] = self._perm(seed, int(e))[offs[m]]
        return out

    def batch(self, seed, step, shard, num_shards, per_shard):
        idx = self.indices(seed, step, per_shard * num_shards)[shard * per_shard : (shard + 1) * per_shard]
        if self.points is not None:
            i = torch.from_numpy(idx)
            return self.points[i], self.labels[i] if self.labels is not None else torch.zeros(per_shard, dtype=torch.long)
        assert self.images is not None
        return self.images.batch(idx, flip=self.flip, generator=stream_generator(seed, step, shard, 2))

    def reference(self, n, seed=0):
        idx = np.random.default_rng(seed).permutation(self.size)[:n]
        if self.points is not None:
            return self.points[torch.from_numpy(idx)]
        assert self.images is not None
        return self.images.batch(idx)[0]


SPLIT_SEED = 20250518
"""The held-out split does not depend on the run's seed: every run of a data set holds out the same items."""


def split_indices(labels: np.ndarray, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) positions of a finite set with ``labels`` [N]: a seeded split that holds out
    round(holdout * n_c) items of every class c (stratified; unlabelled sets are one class)."""
    if not 0 <= holdout < 1:
        raise DataError(f"data.holdout must lie in [0, 1), got {holdout}")
    rng = np.random.default_rng(SPLIT_SEED)
    train, held = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        k = int(round(holdout * len(members)))
        held.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _select(labels: np.ndarray, holdout: float, classes: list[int] | None, split: str) -> np.ndarray:
    """Positions of the requested split: ``train`` keeps only ``classes`` (None: all);
    ``heldout`` keeps every class (the one-class protocol scores all of them)."""
    train, held = split_indices(labels, holdout)
    if split == "heldout":
        if not len(held):
            raise DataError("this run holds nothing out: train with data.holdout > 0 (e.g. 0.2)")
        return held
    if classes is not None:
        missing = sorted(set(classes) - set(np.unique(labels).tolist()))
        if missing:
            raise DataError(f"data.classes {classes}: classes {missing} do not occur in the data")
        train = train[np.isin(labels[train], classes)]
    return train


def build_source(name: str, path: str | None = None, cache: str | None = None, resolution: int | None = None,
                 flip: bool = False, label_column: int | None = None, holdout: float = 0.0,
                 classes: list[int] | None = None, split: str = "train", columns: str = "none",
                 scaling: str = "channel") -> DataSource:
    """A :class:`DataSource` by data-set name (see :mod:`flowmaps.data`); ``label_column``: the
    column of a point file that holds class labels; ``columns``: a point file's per-column
    handling (:mod:`flowmaps.data.columns`; ``none`` keeps the raw values), fitted to the
    training rows for either split.

    Finite sets (points, images) can hold out a seeded, class-stratified fraction ``holdout`` that
    training never sees (``split="heldout"`` returns it), and train on some ``classes`` only.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if name in LABELLED_TOY or name in TOY:
        if holdout or classes is not None or split != "train":
            raise DataError(f"data.holdout and data.classes apply to finite data sets (points, images), not {name!r}")
        if name in LABELLED_TOY:
            num_classes, labelled = LABELLED_TOY[name]
            return SamplerSource(name, labelled, num_classes)
        return SamplerSource(name, TOY[name])
    if name == "points":
        if not path:
            raise FileNotFoundError("data.name=points needs data.path: a table (.csv, .parquet) or a .npy [N, D]")
        return _table_source(path, label_column, holdout, classes, split, columns)
    if name == "array":
        if not path:
            raise FileNotFoundError("data.name=array needs data.path: a .npy or .safetensors file [N, ...] or a folder of them")
        return _finite(name, ArrayFiles(path, scaling=scaling), holdout, classes, split, False)
    if name in IMAGE_DATASETS:
        return _finite(name, load_images(name, path, resolution=resolution, cache_dir=cache), holdout, classes, split, flip)
    valid = sorted(TOY) + ["points", "array"] + list(IMAGE_DATASETS)
    raise DataError(f"unknown data set {name!r}; choose one of {', '.join(valid)}")


TABLE_FILL_SEED = 7727
"""Seeds the standard normal draws that fill the value of empty number cells in a table's codes."""


def _table_source(path: str, label_column: int | None, holdout: float, classes: list[int] | None, split: str,
                  columns: str) -> ArraySource:
    """A table's rows (:func:`build_source`, ``data.name=points``): read as it comes, split, its
    columns fitted to the training rows (:mod:`flowmaps.data.columns`) and held in the model's
    scale; ``columns=none`` keeps the raw numbers (every cell a number)."""
    raw: RawTable | None = None
    if columns == "none":
        points, labels, _ = load_table(path, label_column)
        n = len(points)
    else:
        raw, labels = _label_column(read_table(path), label_column)
        n = len(raw)
    if classes is not None and labels is None:
        raise DataError("data.classes needs labels: set data.label_column")
    lab = np.zeros(n, np.int64) if labels is None else labels.numpy()
    train = _select(lab, holdout, classes, "train")
    keep = train if split == "train" else _select(lab, holdout, classes, split)
    table = None
    if raw is None:
        x = points[torch.from_numpy(keep)]
    else:  # fitted to the training rows, for either split
        table = detect_columns(raw.take(train), spec=columns)
        if not table.width:
            raise DataError(f"data.path {path!r}: no column can be modelled ({table.describe()}); a table needs at least one "
                            f"column of numbers, categories or dates")
        view = table.parse(raw.take(keep), strict=False)  # a level seen only in held-out rows reads as empty
        x = table.apply(view, generator=torch.Generator().manual_seed(TABLE_FILL_SEED)).float()
    src = ArraySource("points", x, labels=None if labels is None else labels[torch.from_numpy(keep)])
    if labels is not None:
        src.num_classes = int(labels.max()) + 1
    src.columns = table
    return src


def _label_column(raw: RawTable, label_column: int | None) -> tuple[RawTable, Tensor | None]:
    """(the table without its label column, the labels [N]) for ``data.label_column``."""
    if label_column is None:
        return raw, None
    j = label_column_index(label_column, len(raw.names), raw.where)
    labels = raw.columns[j]
    check_class_labels(labels, label_column, raw.where)
    return raw.drop(j), torch.as_tensor(labels.astype(np.int64))


def _finite(name: str, data: Any, holdout: float, classes: list[int] | None, split: str, flip: bool) -> ArraySource:
    """An :class:`ArraySource` over images or array files, split as :func:`build_source` says."""
    if not (holdout or classes is not None or split != "train"):
        return ArraySource(name, data, flip=flip)
    if classes is not None and not data.num_classes:
        raise DataError(f"data.classes needs labels; {name!r} has none")
    src = ArraySource(name, data.subset(_select(data.all_labels(), holdout, classes, split)), flip=flip and split == "train")
    src.full_images = data
    return src
