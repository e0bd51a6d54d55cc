"""Tables as they come: how each column is read into the model's scale and written back.

A table's columns differ in kind (numbers, text categories, yes/no flags, dates, identifiers),
in scale (0.01 beside 350) and in how often they are empty. Every column is handled on its own,
with statistics computed once from the training rows and stored with the run (``run.json``, key
``columns``). Each column has a **view** in the data's scale, one float64 per row (the
``[B, C]`` tensors of :meth:`TableTransform.invert` and :meth:`TableTransform.apply`; NaN is an
empty cell), and a **code** of ``width`` coordinates in the model's scale (``[B, D]``):

Every number and date is written back inside the range of the training rows (:meth:`Column.tidy`).

- ``real``: standardised to mean 0 and std 1;
- ``positive``: non-negative values; a right-skewed column (skewness above :data:`SKEW_FOR_LOG`)
  is first mapped by log(x + c), c a fraction of its median positive value; outputs clipped at 0;
- ``integer``: standardised; outputs rounded (non-negative counts: also ``positive``'s log and clip);
- ``share``: values in [0, 1] (a rate, a proportion): modelled on the logit scale when few cells
  sit exactly on a bound, outputs kept in [0, 1];
- ``category``: a number column with at most :data:`MAX_CATEGORIES` values (a grade, a 0/1 flag)
  is one standardised coordinate snapped to the nearest seen value; a text column of levels (at
  most :data:`MAX_LEVELS`, rare ones kept) is a code word per level, written back as the level's
  own string: one-hot (+1 / -1) up to :data:`ONEHOT_MAX_LEVELS` levels, analog bits above (a
  level's index in binary, +1 / -1), decoded by the nearest code word (arg-max);
- ``boolean``: yes/no, true/false, y/n or t/f text: a two-level category in its own spelling;
- ``datetime``: ISO dates and times (and the formats of :data:`DATE_FORMATS`): seconds since
  1970, standardised, written back in the input's format at its resolution;
- ``identifier`` (a distinct value in nearly every row: a row number, a customer number, a name)
  and ``text`` (free text, or more distinct strings than a category holds): not modelled; an
  identifier is written back as fresh unique values in the input's format, free text empty;
- ``constant`` and ``empty`` columns: not modelled, written back as they were.

**Empty cells are data**: a number or date column with empty training cells gets one more
coordinate, +1 where the cell is empty and -1 where it holds a value, learned with the rest; its
value coordinate is filled with standard normal draws for training (seeded) and written back
empty where the indicator says so. A category with empty cells has 'empty' as one more level.

Types are detected from the training rows (:func:`detect_columns`) and can be set by hand with
``data.columns`` (:func:`parse_column_spec`): ``auto``, ``none`` (the raw values, one scale) or
``name:type,...`` for some columns (the rest detected), e.g. ``age:integer,zip:category,id:identifier``.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .tables import RawTable

COLUMN_TYPES = ("real", "positive", "integer", "share", "category", "boolean", "datetime", "identifier", "text",
                "constant", "empty")
LEFT_OUT = ("identifier", "text", "constant", "empty")
"""Types that are not modelled: written back from what the run stored, not from the model."""
MAX_CATEGORIES = 10
"""Number columns with at most this many distinct values are categories (snapped to the seen values)."""
MAX_LEVELS = 500
"""A category holds at most this many levels (a text column with more is free text or an identifier)."""
ONEHOT_MAX_LEVELS = 64
"""Categories with more levels (the empty level counted) are coded in analog bits instead of one-hot."""
IDENTIFIER_SHARE = 0.95
"""A text column (or an integer one named like an id, or dense) distinct in at least this share of rows is an identifier."""
MIN_ROWS_FOR_IDENTIFIER = 20
TEXT_SHARE = 0.5
"""A text column with more than this share of distinct values (and more than MAX_CATEGORIES) is not a category."""
SHARE_MIN_HIGH = 0.5
"""A number column inside [0, 1] is a share when it reaches above this (near the bound 1, where a
log would not keep it inside); a column of small values far from 1 is ``positive``."""
SKEW_FOR_LOG = 1.0
"""Non-negative columns more right-skewed than this are log-transformed before standardising."""
LOG_OFFSET = 0.1
"""c in log(x + c), as a fraction of the column's median positive value."""
LOGIT_BOUND_SHARE = 0.01
"""A share column is modelled on the logit scale when at most this share of its cells is exactly 0 or 1."""
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d")
"""Date formats tried in order; a column is a date when every non-empty cell parses with one
(``%Y%m%d`` only for 8-digit text)."""
BOOLEAN_PAIRS = ({"yes", "no"}, {"true", "false"}, {"y", "n"}, {"t", "f"})
_ID_NAME = re.compile(r"(^|[\s_.\-])(id|key|index|idx|no|nr|number|code)$|^(id|rownames|row|index|unnamed: ?0)\b",
                      re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z]Id$|ID$")
"""Column names of identifiers: customer_id, order no, rownames, Unnamed: 0, customerId, userID."""
_EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


@dataclass
class Column:
    """One column: its name and type, the standardisation of its (transformed) values, and what
    writing it back needs (see the module doc for each type).

    ``values``: a number category's seen values; ``levels``: a text category's (or boolean's)
    levels as written, ``encoding`` their code (``onehot`` or ``bits``), ``missing_level``: the
    last code word stands for an empty cell; ``missing``: the share of empty training cells (> 0
    for a number or date column: an indicator coordinate); ``decimals``: numbers are written with
    this many decimals (-1: 7 significant digits); ``format``: a date's strftime format or an
    identifier's pattern; ``step``: a date's resolution in seconds; ``constant``: a constant
    column's value as written; ``id_*``: how fresh identifiers are made; ``dtype``: a DataFrame
    column's pandas dtype ("" for a file)."""

    name: str
    type: str
    mean: float = 0.0
    std: float = 1.0
    log_offset: float = 0.0
    nonnegative: bool = False
    integer: bool = False
    low: float = 0.0
    high: float = 0.0
    values: list[float] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    encoding: str = ""
    missing_level: bool = False
    numeric_levels: bool = False
    missing: float = 0.0
    logit: bool = False
    decimals: int = -1
    format: str = ""
    step: float = 0.0
    constant: str | None = None
    id_next: int = 0
    id_width: int = 0
    id_shapes: list[str] = field(default_factory=list)
    dtype: str = ""

    # -- the code ---------------------------------------------------------------------------------
    @property
    def modelled(self) -> bool:
        return self.type not in LEFT_OUT

    @property
    def coded(self) -> bool:
        """A category of levels (text, boolean): code words instead of one standardised value."""
        return bool(self.levels) and self.type in ("category", "boolean")

    @property
    def indicator(self) -> bool:
        """A value column with empty training cells: one more coordinate says empty (+1) or not (-1)."""
        return self.modelled and not self.coded and self.missing > 0

    def codebook(self) -> np.ndarray:
        """The code words [K, w] of a coded category (+1 / -1), K its levels (the empty one counted)."""
        k = len(self.levels) + int(self.missing_level)
        if self.encoding == "onehot":
            return 2.0 * np.eye(k) - 1.0
        bits = max(1, math.ceil(math.log2(k)))
        return 2.0 * ((np.arange(k)[:, None] >> np.arange(bits)[None]) & 1) - 1.0

    @property
    def width(self) -> int:
        """How many coordinates of the model's scale the column takes."""
        if not self.modelled:
            return 0
        if self.coded:
            return int(self.codebook().shape[1])
        return 1 + int(self.indicator)

    def _forward(self, v: np.ndarray) -> np.ndarray:
        """Values [B] -> the scale they are standardised in (log, logit or as they are)."""
        if self.log_offset > 0:
            return np.log(np.clip(v, 0, None) + self.log_offset)
        if self.logit:
            eps = self._logit_eps()
            p = np.clip(v, eps, 1 - eps)
            return np.log(p) - np.log1p(-p)
        return v

    def _backward(self, u: np.ndarray) -> np.ndarray:
        if self.log_offset > 0:
            return np.exp(np.minimum(u, 80)) - self.log_offset
        if self.logit:
            return 1.0 / (1.0 + np.exp(-np.clip(u, -80, 80)))
        return u

    def _logit_eps(self) -> float:
        return 1e-4 if self.low > 0 or self.high < 1 else 1e-3

    def encode(self, v: np.ndarray, fill: np.ndarray | None = None, present: bool = False) -> np.ndarray:
        """The view v [B] (NaN: empty) -> codes [B, width]. ``fill`` [B]: standard normal draws for
        the value coordinate of empty cells (else 0, the column's mean); ``present``: an empty cell is
        one to fill, so its indicator says 'holds a value' (imputation)."""
        empty = np.isnan(v)
        if self.coded:
            book = self.codebook()
            idx = np.where(empty, len(self.levels), np.nan_to_num(v)).astype(np.int64)
            out = np.zeros((len(v), book.shape[1]))
            ok = idx < len(book)  # an empty cell of a category without an empty level: unknown (0)
            out[ok] = book[idx[ok]]
            return out
        z = (self._forward(np.where(empty, self.low, v)) - self.mean) / self.std
        z = np.where(empty, 0.0 if fill is None else fill, z)
        if not self.indicator:
            return z[:, None]
        flag = np.where(empty & (not present), 1.0, -1.0)
        return np.stack([z, flag], 1)

    def decode(self, z: np.ndarray, fill: bool = False) -> np.ndarray:
        """Codes z [B, width] -> the view [B] (NaN: empty). ``fill``: never empty (imputation)."""
        if self.coded:
            scores = z @ self.codebook().T
            if self.missing_level and fill:
                scores[:, -1] = -np.inf
            idx = scores.argmax(1).astype(np.float64)
            return np.where(idx >= len(self.levels), np.nan, idx)
        v = self.tidy(self._backward(z[:, 0] * self.std + self.mean))
        if self.indicator and not fill:
            v = np.where(z[:, 1] > 0, np.nan, v)
        return v

    def tidy(self, v: np.ndarray) -> np.ndarray:
        """Values [B] in the data's scale made ones the column can hold: kept inside the training
        rows' range (as SDV's ``enforce_min_max_values`` does: a sample past the largest value seen
        is an artefact of the map's tails, not a new record), snapped to a seen value, rounded to a
        whole number or to a date's resolution."""
        if self.high > self.low:
            v = np.clip(v, self.low, self.high)
        if self.nonnegative:
            v = np.clip(v, 0, None)
        if self.type == "share":
            v = np.clip(v, 0.0, 1.0)
        if self.values:
            seen = np.asarray(self.values)
            v = seen[np.abs(v[:, None] - seen[None]).argmin(1)]
        elif self.integer:
            v = np.round(v)
        elif self.step > 0:
            v = np.round(v / self.step) * self.step
        return v

    # -- reading and writing cells ----------------------------------------------------------------
    def parse(self, cells: np.ndarray, where: str, line: Any, strict: bool = True) -> np.ndarray:
        """A column of a user's table (numbers or text, as :class:`RawTable` holds it) -> the view
        [B]; ``line(i)`` names row i in a message. A level never seen in training is refused
        (``strict``) or read as an empty cell."""
        if not self.modelled:
            return np.full(len(cells), np.nan)
        if self.coded:
            index = {lv: i for i, lv in enumerate(self.levels)}
            out = np.full(len(cells), np.nan)
            for i, c in enumerate(cells):
                if c is None or (isinstance(c, float) and math.isnan(c)):
                    continue
                key = _level_text(c) if self.numeric_levels else _bool_text(c, self.levels) if self.type == "boolean" else str(c)
                if key not in index and not strict:
                    continue
                if key not in index:
                    raise DataError(f"{where}: column {self.name!r} has {key!r} on {line(i)}, a level never seen in training "
                                     f"({_some(self.levels)})")
                out[i] = index[key]
            return out
        if self.type == "datetime":
            if cells.dtype.kind == "f":
                raise DataError(f"{where}: column {self.name!r} holds numbers; this run reads it as dates like "
                                 f"{_example_date(self)}")
            return _parse_dates(cells, self.format, f"{where}: column {self.name!r}")
        if cells.dtype.kind != "f":
            bad = next(i for i, c in enumerate(cells) if c is not None)
            raise DataError(f"{where}: column {self.name!r} holds text ({cells[bad]!r} on {line(bad)}); this run reads it "
                             f"as numbers ({self.type})")
        return cells.astype(np.float64)

    def text(self, v: np.ndarray, rng: np.random.Generator) -> list[str | None]:
        """The view v [B] as the cells to write (None: an empty cell)."""
        n = len(v)
        if self.type == "constant":
            return [self.constant] * n
        if self.type in ("empty", "text"):
            return [None] * n
        if self.type == "identifier":
            return self.fresh_identifiers(n, rng)
        empty = np.isnan(v)
        if self.coded:
            return [None if e else self.levels[int(i)] for e, i in zip(empty, v)]
        if self.type == "datetime":
            stamps = (_EPOCH + np.round(np.nan_to_num(v) * 1e6).astype("timedelta64[us]")).astype(object)
            return [None if e else s.strftime(self.format) for e, s in zip(empty, stamps)]
        return [None if e else _number_text(x, self.integer or bool(self.values) and _whole(self.values), self.decimals)
                for e, x in zip(empty, v.tolist())]

    def fresh_identifiers(self, n: int, rng: np.random.Generator) -> list[str | None]:
        """n identifiers in the training values' format that none of them had: the numbers after
        the largest one (with the same prefix, suffix and zero-padding), or random letters and
        digits in the shape of a training value."""
        if self.format:
            prefix, suffix = self.format.split("{}")
            return [f"{prefix}{k:0{self.id_width}d}{suffix}" for k in range(self.id_next, self.id_next + n)]
        if not self.id_shapes:
            return [None] * n
        out: list[str | None] = []
        seen: set[str] = set()
        for _ in range(n):
            shape = self.id_shapes[int(rng.integers(len(self.id_shapes)))]
            for _ in range(20):
                value = "".join(_random_char(ch, rng) for ch in shape)
                if value not in seen:
                    break
            seen.add(value)
            out.append(value)
        return out

    def summary(self) -> str:
        """One line for the log before training: 'species: category, 3 levels (one-hot)'."""
        what = self.type
        if self.coded:
            what += f", {len(self.levels)} levels ({'one-hot' if self.encoding == 'onehot' else 'analog bits'}"
            what += f", {self.width} coordinates)" if self.encoding == "bits" else ")"
        elif self.values:
            what += f", {len(self.values)} values"
        elif self.type == "datetime":
            what += f" ({self.format})"
        elif self.log_offset > 0:
            what += ", log-transformed"
        elif self.logit:
            what += ", logit"
        if self.missing > 0:
            what += f", {100 * self.missing:.1f}% empty (learned)"
        if self.type == "identifier":
            what += ": not modelled, written back as fresh unique values"
        elif self.type == "text":
            what += ": free text, not modelled, written back empty"
        elif self.type == "constant":
            what += f": {self.constant!r} in every row, not modelled"
        elif self.type == "empty":
            what += ": every cell empty, not modelled"
        return f"{self.name}: {what}"


def _whole(values: list[float]) -> bool:
    return all(float(v).is_integer() for v in values)


def _number_text(x: float, integer: bool, decimals: int) -> str:
    if integer or (decimals == 0 and abs(x) < 1e15):
        return f"{x:.0f}"
    if decimals > 0:
        return f"{x:.{decimals}f}"
    return f"{x:.0f}" if x == round(x) and abs(x) < 1e15 else f"{x:.7g}"


def _level_text(v: Any) -> str:
    """A number level as written: 3 for 3.0, 2.5 for 2.5."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return _number_text(x, x == round(x), -1)


def _bool_text(c: Any, levels: list[str]) -> str:
    """A boolean cell in the training spelling (True, 'true' and 'TRUE' are one level)."""
    low = {lv.lower(): lv for lv in levels}
    return low.get(str(c).strip().lower(), str(c))


def _some(levels: list[str], k: int = 8) -> str:
    shown = ", ".join(repr(lv) for lv in levels[:k])
    return f"the levels are {shown}" + (f" and {len(levels) - k} more" if len(levels) > k else "")


def _random_char(ch: str, rng: np.random.Generator) -> str:
    if ch == "9":
        return str(int(rng.integers(10)))
    if ch == "a":
        return chr(97 + int(rng.integers(26)))
    if ch == "A":
        return chr(65 + int(rng.integers(26)))
    return ch


def _shape(value: str) -> str:
    return "".join("9" if c.isdigit() else "A" if c.isupper() else "a" if c.isalpha() else c for c in value)


def _example_date(col: Column) -> str:
    return (_EPOCH + np.timedelta64(int(col.mean * 1e6), "us")).astype(object).strftime(col.format)


def _parse_dates(cells: np.ndarray, fmt: str, what: str | None = None) -> np.ndarray:
    """Text dates [B] in ``fmt`` -> seconds since 1970 [B] (NaN empty). A cell that does not parse:
    NaN, or with ``what`` a one-line error."""
    import pandas as pd

    text = pd.Series([None if c is None else str(c) for c in cells], dtype=object)
    stamps = pd.to_datetime(text, format=fmt, errors="coerce")
    bad = stamps.isna() & text.notna()
    if what is not None and bool(bad.any()):
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{what} has {text[i]!r}, not a date in this run's format {fmt!r}")
    return np.array([math.nan if pd.isna(s) else (s - pd.Timestamp("1970-01-01")).total_seconds() for s in stamps])


def _date_format(cells: list[str]) -> str | None:
    """The first of :data:`DATE_FORMATS` that every cell parses with (None: not dates)."""
    import pandas as pd

    sample = pd.Series(cells[:2000], dtype=object)
    if not sample.str.contains(r"\d", regex=True).all() or sample.str.len().max() > 32:
        return None
    for fmt in DATE_FORMATS:
        if fmt == "%Y%m%d" and not sample.str.fullmatch(r"\d{8}").all():
            continue
        if not pd.to_datetime(sample, format=fmt, errors="coerce").isna().any():
            if pd.to_datetime(pd.Series(cells, dtype=object), format=fmt, errors="coerce").isna().any():
                continue
            return fmt
    return None


def _decimals(v: np.ndarray) -> int:
    """The fewest decimals (0..6) that write every value exactly (-1: none does)."""
    for d in range(7):
        if np.allclose(np.round(v, d), v, rtol=0, atol=1e-9 * max(1.0, float(np.abs(v).max()))):
            return d
    return -1


# -- fitting ---------------------------------------------------------------------------------------

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


def detect_type(v: np.ndarray, name: str = "") -> str:
    """A column's type from its training values [N]: numbers (float64, NaN empty) or text
    (objects, None empty); see the module doc."""
    if v.dtype.kind == "f":
        x = v[~np.isnan(v)]
        distinct = len(np.unique(x))
        if distinct == 0:
            return "empty"
        if distinct == 1:
            return "constant"
        if distinct <= MAX_CATEGORIES:
            return "category"
        if (x == np.round(x)).all():
            if distinct == len(x) >= MIN_ROWS_FOR_IDENTIFIER and (_ID_NAME.search(name.strip()) or _ID_CAMEL.search(name.strip())
                                                             or np.ptp(x) < 3 * len(x)):
                return "identifier"
            return "integer"
        if (x >= 0).all() and (x <= 1).all() and x.max() > SHARE_MIN_HIGH:
            return "share"
        return "positive" if (x >= 0).all() else "real"
    cells = [c for c in v if c is not None]
    distinct = len(set(cells))
    if distinct == 0:
        return "empty"
    if distinct == 1:
        return "constant"
    if distinct == 2 and {c.strip().lower() for c in cells} in BOOLEAN_PAIRS:
        return "boolean"
    if _date_format(cells) is not None:
        return "datetime"
    if len(cells) >= MIN_ROWS_FOR_IDENTIFIER and distinct >= IDENTIFIER_SHARE * len(cells):
        words = np.mean([len(c.split()) for c in cells[:2000]])
        return "identifier" if words <= 3 else "text"
    if distinct > MAX_LEVELS or (distinct > MAX_CATEGORIES and distinct > TEXT_SHARE * len(cells)):
        return "text"
    return "category"


def fit_column(name: str, v: np.ndarray, kind: str, dtype: str = "") -> Column:
    """The :class:`Column` of type ``kind`` fitted to training values v [N] (float64 with NaN, or
    text with None; see :func:`detect_type`)."""
    numbers = v.dtype.kind == "f"
    empty = np.isnan(v) if numbers else np.array([c is None for c in v], dtype=bool)
    missing = float(empty.mean()) if len(v) else 0.0
    present = v[~empty]
    if kind in ("constant", "empty", "text"):
        const = None
        if kind == "constant" and len(present):
            const = _number_text(float(present[0]), float(present[0]).is_integer(), -1) if numbers else str(present[0])
        return Column(name, kind, missing=missing, constant=const, dtype=dtype)
    if kind == "identifier":
        return _fit_identifier(name, present, numbers, missing, dtype)
    if kind in ("category", "boolean") and (not numbers or len(np.unique(present)) > MAX_CATEGORIES or kind == "boolean"):
        return _fit_levels(name, present, numbers, kind, missing, dtype)
    if kind == "datetime":
        if numbers:
            raise DataError(f"data.columns: column {name!r} holds numbers, not dates; give it a number type")
        fmt = _date_format(list(present))
        if fmt is None:
            raise DataError(f"data.columns: column {name!r} is set datetime but {present[0]!r} is not a date in any of the "
                             f"formats {', '.join(DATE_FORMATS[:4])}, ...")
        secs = _parse_dates(present, fmt)
        step = 86400.0 if not any(c in fmt for c in "HMS") else 60.0 if "%S" not in fmt else 1.0 if "%f" not in fmt else 0.0
        return Column(name, "datetime", float(secs.mean()), float(secs.std()) or 1.0, low=float(secs.min()),
                      high=float(secs.max()), missing=missing, format=fmt, step=step, dtype=dtype)
    if not numbers:
        raise DataError(f"data.columns: column {name!r} holds text ({present[0]!r}); it cannot be {kind}: "
                         f"make it category, identifier or text")
    x = present.astype(np.float64)
    if kind == "positive" and not (x >= 0).all():
        raise DataError(f"data.columns: column {name!r} is set positive but holds negative values (min {x.min():g})")
    if kind == "share" and not ((x >= 0).all() and (x <= 1).all()):
        raise DataError(f"data.columns: column {name!r} is set share but holds values outside [0, 1] "
                         f"({x.min():g} to {x.max():g})")
    nonneg = bool((x >= 0).all()) and kind in ("positive", "integer", "category")
    offset, logit = 0.0, False
    if nonneg and kind != "category" and _skewness(x) > SKEW_FOR_LOG:
        positive = x[x > 0]
        offset = LOG_OFFSET * float(np.median(positive)) if len(positive) else 1.0
    if kind == "share":
        logit = float(((x == 0) | (x == 1)).mean()) <= LOGIT_BOUND_SHARE
    col = Column(name, kind, nonnegative=nonneg, integer=kind == "integer", log_offset=offset, logit=logit,
                 low=float(x.min()), high=float(x.max()), missing=missing, decimals=_decimals(x), dtype=dtype,
                 values=sorted(float(u) for u in np.unique(x)) if kind == "category" else [])
    u = col._forward(x)
    std = float(u.std())
    col.mean, col.std = float(u.mean()), std if std > 0 else 1.0
    return col


def _fit_levels(name: str, present: np.ndarray, numbers: bool, kind: str, missing: float, dtype: str) -> Column:
    """A category (or boolean) of levels: the seen values, sorted (a boolean's false level first),
    one-hot up to :data:`ONEHOT_MAX_LEVELS` code words (the empty level counted), else analog bits."""
    if numbers:
        levels = [_level_text(u) for u in np.unique(present)]
    else:
        levels = sorted({str(c) for c in present})
    if kind == "boolean":
        spellings = {c.strip().lower() for c in levels}
        if len(levels) > 2 or not any(spellings <= pair for pair in BOOLEAN_PAIRS):
            raise DataError(f"data.columns: column {name!r} is set boolean but holds {_some(levels, 4)[15:]}; "
                             f"make it category")
        levels = sorted(levels, key=lambda lv: lv.strip().lower() in ("yes", "true", "y", "t"))  # the false level first
    if len(levels) > MAX_LEVELS:
        raise DataError(f"data.columns: column {name!r} has {len(levels):,} distinct values, too many for a category "
                         f"(at most {MAX_LEVELS}); leave it out with {name}:identifier or {name}:text")
    k = len(levels) + int(missing > 0)
    encoding = "onehot" if 2 < k <= ONEHOT_MAX_LEVELS else "bits"
    return Column(name, kind, levels=levels, encoding=encoding, missing_level=missing > 0, numeric_levels=numbers,
                  missing=missing, dtype=dtype)


def _fit_identifier(name: str, present: np.ndarray, numbers: bool, missing: float, dtype: str) -> Column:
    """An identifier: the next numbers after the largest (numbers, or text with a common prefix
    and suffix around digits), else the shapes of up to 64 training values (letters and digits
    replaced by their class: no training value is stored)."""
    col = Column(name, "identifier", missing=missing, dtype=dtype)
    if not len(present):
        return col
    if numbers:
        col.format, col.id_next = "{}", int(np.nanmax(present)) + 1
        return col
    parts = [re.fullmatch(r"(\D*?)(\d+)(\D*)", str(c)) for c in present]
    if all(parts) and len({(m.group(1), m.group(3)) for m in parts}) == 1:  # type: ignore[union-attr]
        m0 = parts[0]
        digits = {len(m.group(2)) for m in parts}  # type: ignore[union-attr]
        col.format = f"{m0.group(1)}{{}}{m0.group(3)}"  # type: ignore[union-attr]
        col.id_width = digits.pop() if len(digits) == 1 else 0
        col.id_next = max(int(m.group(2)) for m in parts) + 1  # type: ignore[union-attr]
        return col
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(present))[:64]
    col.id_shapes = sorted({_shape(str(present[i])) for i in pick})
    return col


@dataclass
class TableTransform:
    """The per-column map between a table's view [B, C] (data scale, NaN empty) and the model's
    codes [B, D], D the sum of the columns' widths."""

    columns: list[Column]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    def slices(self) -> list[slice]:
        """Each column's coordinates in the codes."""
        out, at = [], 0
        for c in self.columns:
            out.append(slice(at, at + c.width))
            at += c.width
        return out

    @property
    def plain(self) -> bool:
        """Every column one coordinate of numbers, none empty: the view and the codes have one shape."""
        return all(c.width == 1 and not c.coded and c.type != "datetime" for c in self.columns)

    def apply(self, x: Tensor, generator: torch.Generator | None = None, present: bool = False) -> Tensor:
        """The view x [B, C] (NaN: empty) -> codes [B, D] in x's floating dtype. ``generator``:
        fill the value of empty number cells with standard normal draws (training rows); else the
        column's mean. ``present``: empty cells are to be filled (their indicator says 'a value')."""
        self._check(x, len(self.columns), "columns")
        v = x.detach().cpu().double().numpy()
        parts = []
        for j, c in enumerate(self.columns):
            if not c.width:
                continue
            fill = None
            if generator is not None and c.indicator:
                fill = torch.randn(len(v), generator=generator, dtype=torch.float64).numpy()
            parts.append(c.encode(v[:, j], fill, present))
        codes = np.concatenate(parts, 1) if parts else np.zeros((len(v), 0))
        dtype = x.dtype if x.dtype.is_floating_point else torch.float32
        return torch.from_numpy(codes).to(device=x.device, dtype=dtype)

    def invert(self, x: Tensor, fill: bool = False) -> Tensor:
        """Codes x [B, D] -> the view [B, C] (float64; NaN: an empty cell, and every column that is
        not modelled): unstandardised, log or logit undone, clipped, rounded or snapped, the
        nearest level. ``fill``: never empty (imputation)."""
        self._check(x, self.width, "coordinates")
        z = x.detach().cpu().double().numpy()
        out = np.full((len(z), len(self.columns)), np.nan)
        for j, (c, sl) in enumerate(zip(self.columns, self.slices())):
            if c.width:
                out[:, j] = c.decode(z[:, sl], fill)
        return torch.from_numpy(out).to(x.device)

    def known(self, x: Tensor, present: bool = False) -> Tensor:
        """Which coordinates of the codes of view x [B, C] are known [B, D] (1.0 / 0.0): a cell's
        coordinates when it holds a value; with ``present`` (imputation) also the indicator of an
        empty number cell, which is to be filled."""
        v = x.detach().cpu().double().numpy()
        parts = []
        for j, c in enumerate(self.columns):
            if not c.width:
                continue
            has = ~np.isnan(v[:, j])
            m = np.repeat(has[:, None], c.width, 1).astype(np.float64)
            if c.indicator and present:
                m[:, 1] = 1.0
            parts.append(m)
        return torch.from_numpy(np.concatenate(parts, 1) if parts else np.zeros((len(v), 0))).float()

    def _check(self, x: Tensor, n: int, what: str) -> None:
        if x.ndim != 2 or x.shape[1] != n:
            raise DataError(f"expected rows [B, {n}] ({what} of this table), got {list(x.shape)}")

    # -- a user's table in, cells out ---------------------------------------------------------------
    def parse(self, raw: RawTable, strict: bool = True) -> Tensor:
        """A user's table (the run's columns by name, in any order; others ignored) -> the view
        [B, C] float64. One line names a missing column or (``strict``) a level never seen in
        training; otherwise such a cell reads as empty."""
        absent = [c.name for c in self.columns if c.name not in raw.names]
        if absent:
            raise DataError(f"{raw.where} has no column {absent[0]!r}; this run's columns are {', '.join(self.names)}")
        out = np.full((len(raw), len(self.columns)), np.nan)
        for j, c in enumerate(self.columns):
            out[:, j] = c.parse(raw.columns[raw.names.index(c.name)], raw.where, raw.line, strict)
        return torch.from_numpy(out)

    def cells(self, x: Tensor, seed: int = 0) -> list[list[str | None]]:
        """The view x [B, C] as each column's cells to write [C][B] (None: empty); identifiers
        fresh (seeded)."""
        v = x.detach().cpu().double().numpy()
        rng = np.random.default_rng([seed, 8111])
        return [c.text(v[:, j], rng) for j, c in enumerate(self.columns)]

    def rows(self, x: Tensor, seed: int = 0) -> list[list[str]]:
        """The view x [B, C] as CSV rows of text (empty cells as '')."""
        cols = self.cells(x, seed)
        return [["" if cell is None else cell for cell in row] for row in zip(*cols)] if cols else []

    def frame(self, x: Tensor, seed: int = 0) -> Any:
        """The view x [B, C] as a pandas DataFrame with the input's columns and dtypes (numbers as
        numbers, nullable integers where empty, dates as datetime64 where the input had them)."""
        return cells_frame(self.columns, self.cells(x, seed))

    # -- messages -----------------------------------------------------------------------------------
    def describe(self) -> str:
        """One short clause per type: which columns have it (for the log before training)."""
        parts = []
        for kind in COLUMN_TYPES:
            cols = [c for c in self.columns if c.type == kind]
            if cols:
                logged = sum(c.log_offset > 0 for c in cols)
                extra = f", {logged} log-transformed" if logged else ""
                parts.append(f"{len(cols)} {kind}{extra}")
        empty = sum(c.missing > 0 and c.modelled for c in self.columns)
        left = [c.name for c in self.columns if not c.modelled]
        text = ", ".join(parts)
        if empty:
            text += f"; {empty} with empty cells (learned)"
        if left:
            text += f"; not modelled: {', '.join(left)}"
        return text

    def summary(self) -> list[str]:
        """One line per column (:meth:`Column.summary`)."""
        return [c.summary() for c in self.columns]

    def as_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableTransform:
        known = {f.name for f in fields(Column)}
        return cls([Column(**{k: v for k, v in c.items() if k in known}) for c in d["columns"]])


def cells_frame(columns: list[Column], cells: list[list[str | None]]) -> Any:
    """Cells [C][B] as a pandas DataFrame in the columns' dtypes (see :meth:`TableTransform.frame`)."""
    import pandas as pd

    data = {}
    for c, col in zip(columns, cells):
        s = pd.Series(col, dtype=object)
        numeric = c.type in ("real", "positive", "integer", "share") or (c.type == "category" and (c.values or c.numeric_levels)) \
            or (c.type in ("identifier", "constant") and c.dtype[:3] in ("int", "flo", "Int", "Flo"))
        if numeric:
            s = pd.to_numeric(s)
            if (c.integer or c.dtype.lower().startswith("int") or (c.values and _whole(c.values))) and c.dtype[:5] != "float":
                s = s.astype("Int64") if s.isna().any() else s.astype("int64")
        elif c.type == "datetime" and c.dtype.startswith("datetime64"):
            s = pd.to_datetime(s, format=c.format)
        elif c.type == "boolean" and c.dtype in ("bool", "boolean"):
            s = s.map(lambda v: None if v is None else v.strip().lower() in ("true", "yes", "y", "t"))
            s = s.astype("boolean") if s.isna().any() else s.astype(bool)
        elif c.dtype == "category":
            s = s.astype("category")
        data[c.name] = s
    return pd.DataFrame(data)


def detect_columns(values: np.ndarray | RawTable, names: list[str] | None = None, spec: str = "auto") -> TableTransform:
    """The :class:`TableTransform` of training rows: a :class:`RawTable` or numbers [N, D] with
    ``names``; each column's type from ``spec`` (:func:`parse_column_spec`) or detected
    (:func:`detect_type`), then fitted."""
    if isinstance(values, RawTable):
        raw = values
    else:
        v = np.asarray(values, dtype=np.float64)
        raw = RawTable(list(names or [f"column {j}" for j in range(v.shape[1])]), [v[:, j] for j in range(v.shape[1])], "data.path")
    chosen = parse_column_spec(spec, raw.names)
    dtypes = raw.dtypes or [""] * len(raw.names)
    return TableTransform([fit_column(n, raw.columns[j], chosen.get(j) or detect_type(raw.columns[j], n), dtypes[j])
                           for j, n in enumerate(raw.names)])
