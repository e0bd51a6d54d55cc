"""Tables of numbers: how each column is read into the model's scale and written back.

A table's columns can differ in scale by orders of magnitude (0.01 beside 350), be counts, be
non-negative, or hold a handful of distinct values. One noise scale for all of them leaves the
small columns as pure noise, so every column is handled on its own, with statistics computed once
from the training rows and stored with the run (``run.json``, key ``columns``):

- ``real``: standardised to mean 0 and std 1;
- ``positive``: non-negative values; a right-skewed column (skewness above :data:`SKEW_FOR_LOG`)
  is first mapped by log(x + c), c a fraction of its median positive value, then standardised;
  outputs are clipped at 0, so no sample leaves the column's range;
- ``integer``: standardised; outputs rounded (non-negative integer columns are counts: also
  ``positive``'s log and clip);
- ``category``: at most :data:`MAX_CATEGORIES` distinct values (a binary flag, a grade):
  standardised; outputs snapped to the nearest value seen in training.

Types are detected from the training rows (:func:`detect_columns`) and can be set by hand with
``data.columns`` (:func:`parse_column_spec`): ``auto``, ``none`` (the raw values, one scale) or
``name:type,...`` for some columns (the rest detected), e.g. ``age:integer,income:positive``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

COLUMN_TYPES = ("real", "positive", "integer", "category")
MAX_CATEGORIES = 10
"""Columns with at most this many distinct values are categories (snapped to the seen values)."""
SKEW_FOR_LOG = 1.0
"""Non-negative columns more right-skewed than this are log-transformed before standardising."""
LOG_OFFSET = 0.1
"""c in log(x + c), as a fraction of the column's median positive value."""


@dataclass
class Column:
    """One column: its name and type, the log offset (0: no log), the standardisation of the
    (transformed) values, its non-negativity and integrality, the training range and, for a
    category, the values seen in training."""

    name: str
    type: str
    mean: float
    std: float
    log_offset: float = 0.0
    nonnegative: bool = False
    integer: bool = False
    low: float = 0.0
    high: float = 0.0
    values: list[float] = field(default_factory=list)


@dataclass
class TableTransform:
    """The per-column map between a table's values [B, D] and the model's scale [B, D]."""

    columns: list[Column]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def _vectors(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)
        return (t([c.mean for c in self.columns]), t([c.std for c in self.columns]),
                t([c.log_offset for c in self.columns]))

    def apply(self, x: Tensor) -> Tensor:
        """Data scale -> the model's, x [B, D]: log(x + c) where the column has a log, then standardised."""
        self._check(x)
        mean, std, offset = self._vectors(x)
        logged = offset > 0
        if bool(logged.any()):
            x = torch.where(logged, torch.log(x.clamp(min=0) + torch.where(logged, offset, 1)), x)
        return (x - mean) / std

    def invert(self, x: Tensor) -> Tensor:
        """The model's scale -> the data's, x [B, D]: unstandardised, exp(.) - c where the column has a
        log, clipped at 0 for non-negative columns, rounded for integers, snapped for categories."""
        self._check(x)
        mean, std, offset = self._vectors(x)
        y = x * std + mean
        logged = offset > 0
        if bool(logged.any()):
            y = torch.where(logged, torch.exp(y.clamp(max=80)) - offset, y)
        cols = []
        for j, c in enumerate(self.columns):
            v = y[:, j]
            if c.nonnegative:
                v = v.clamp(min=0)
            if c.type == "category":
                seen = torch.tensor(c.values, dtype=y.dtype, device=y.device)
                v = seen[(v[:, None] - seen[None]).abs().argmin(1)]
            elif c.integer:
                v = v.round()
            cols.append(v)
        return torch.stack(cols, 1)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise DataError(f"expected rows [B, {len(self.columns)}] for this table, got {list(x.shape)}")

    def describe(self) -> str:
        """One line per type: which columns have it (for the log before training)."""
        parts = []
        for kind in COLUMN_TYPES:
            cols = [c for c in self.columns if c.type == kind]
            if cols:
                logged = sum(c.log_offset > 0 for c in cols)
                extra = f", {logged} log-transformed" if logged else ""
                parts.append(f"{len(cols)} {kind}{extra}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableTransform:
        return cls([Column(**c) for c in d["columns"]])


def parse_column_spec(spec: str, names: list[str]) -> dict[int, str]:
    """``data.columns`` -> {column index: type} for the columns it names (``auto``: none).
    A column is named by its header name or its 0-based index."""
    if spec in ("auto", ""):
        return {}
    out: dict[int, str] = {}
    for part in spec.split(","):
        name, sep, kind = part.rpartition(":")
        name, kind = name.strip(), kind.strip()
        if not sep or not name:
            raise DataError(f"data.columns {spec!r}: expected 'auto', 'none' or name:type pairs separated by commas, "
                             f"e.g. 'age:integer,income:positive'")
        if kind not in COLUMN_TYPES:
            raise DataError(f"data.columns: unknown type {kind!r} for {name!r}; choose one of {', '.join(COLUMN_TYPES)}")
        if name in names:
            out[names.index(name)] = kind
        elif name.isdigit() and int(name) < len(names):
            out[int(name)] = kind
        else:
            raise DataError(f"data.columns: no column {name!r}; the columns are {', '.join(names)} (or 0..{len(names) - 1})")
    return out


def _skewness(v: np.ndarray) -> float:
    s = v.std()
    return float(((v - v.mean()) ** 3).mean() / s**3) if s > 0 else 0.0


def detect_type(v: np.ndarray) -> str:
    """A column's type from its training values [N] (see the module doc)."""
    if len(np.unique(v)) <= MAX_CATEGORIES:
        return "category"
    if (v == np.round(v)).all():
        return "integer"
    if (v >= 0).all():
        return "positive"
    return "real"


def fit_column(name: str, v: np.ndarray, kind: str) -> Column:
    """The :class:`Column` of type ``kind`` fitted to training values v [N] (float64)."""
    nonneg = bool((v >= 0).all()) and kind in ("positive", "integer", "category")
    if kind == "positive" and not (v >= 0).all():
        raise DataError(f"data.columns: column {name!r} is set positive but holds negative values (min {v.min():g})")
    integer = kind == "integer"  # rounded on output (a category snaps to its seen values instead)
    offset = 0.0
    if nonneg and kind != "category" and _skewness(v) > SKEW_FOR_LOG:
        positive = v[v > 0]
        offset = LOG_OFFSET * float(np.median(positive)) if len(positive) else 1.0
    u = np.log(v + offset) if offset > 0 else v
    std = float(u.std())
    return Column(name, kind, float(u.mean()), std if std > 0 else 1.0, offset, nonneg, integer,
                  float(v.min()), float(v.max()), sorted(float(x) for x in np.unique(v)) if kind == "category" else [])


def detect_columns(values: np.ndarray, names: list[str], spec: str = "auto") -> TableTransform:
    """The :class:`TableTransform` of training rows ``values`` [N, D]: each column's type from
    ``spec`` (:func:`parse_column_spec`) or detected (:func:`detect_type`), then fitted."""
    chosen = parse_column_spec(spec, names)
    v = np.asarray(values, dtype=np.float64)
    return TableTransform([fit_column(n, v[:, j], chosen.get(j) or detect_type(v[:, j])) for j, n in enumerate(names)])
