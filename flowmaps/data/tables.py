"""Tables from CSV or Parquet files or a pandas DataFrame, read as they come.

:func:`read_table` gives a :class:`RawTable`: the header's names and, per column, either numbers
(float64, NaN for an empty cell) or text (an object array of stripped strings, None for an empty
cell). What each column *is* (a category, a date, an identifier...) is decided later, from the
training rows, by :mod:`flowmaps.data.columns`. A file that cannot be a table is refused with one
line naming the fix, before anything is written: a header with duplicate names, rows of unequal
length, fewer than two data rows.

:func:`read_csv_table` is the strict reader of an all-numbers table (``data.columns=none``): every
cell a finite number, no constant column.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "inf", "-inf", "+inf", "infinity", "-infinity"})
"""Cells read as empty (case-insensitive). Inf counts as empty: no column can model it."""
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
"""The files read as tables (besides a .npy array [N, D])."""


@dataclass
class RawTable:
    """A table as read: column ``names`` [C] and ``columns`` [C], each an array [N] of float64
    (numbers; NaN empty) or of objects (text; None empty); ``dtypes`` [C]: a DataFrame's pandas
    dtype names ("" for a file); ``where``: how messages name the source; ``first_line``: the
    1-based file line of row 0 (0 for a DataFrame)."""

    names: list[str]
    columns: list[np.ndarray]
    where: str
    first_line: int = 0
    dtypes: list[str] = field(default_factory=list)
    text: list[list[str]] | None = None
    """A file's rows as written (CSV, TSV): what imputation writes back for every known cell."""

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def line(self, row: int) -> str:
        """Where row ``row`` is, for a message: 'line 7' of a file, 'row 5' of a DataFrame."""
        return f"line {row + self.first_line}" if self.first_line else f"row {row}"

    def take(self, index: np.ndarray) -> RawTable:
        """The rows at ``index`` (line numbers are no longer meaningful: rows are named by position)."""
        return RawTable(self.names, [c[index] for c in self.columns], self.where, 0, self.dtypes,
                        None if self.text is None else [self.text[i] for i in index])

    def drop(self, j: int) -> RawTable:
        """The table without column ``j``."""
        keep = [i for i in range(len(self.names)) if i != j]
        return RawTable([self.names[i] for i in keep], [self.columns[i] for i in keep], self.where, self.first_line,
                        [self.dtypes[i] for i in keep] if self.dtypes else [],
                        None if self.text is None else [[r[i] for i in keep] for r in self.text])

    def numeric(self) -> bool:
        return all(c.dtype.kind == "f" for c in self.columns)


def _number(cell: str) -> float | None:
    """The cell as a finite float; None for a missing cell; raises ValueError for text."""
    text = cell.strip()
    if text.lower() in MISSING:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def parse_cells(cells: list[str]) -> np.ndarray:
    """Numbers (float64, NaN empty) when every non-empty cell is one, else text (None empty)."""
    try:
        return np.array([math.nan if (v := _number(c)) is None else v for c in cells], dtype=np.float64)
    except ValueError:
        return np.array([None if _is_missing(c) else c.strip() for c in cells], dtype=object)


def _is_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns: a non-numeric cell above a column of numbers, or
    a row of distinct text cells none of which occurs again below it."""
    first, body = rows[0], rows[1:]
    cells = [c.strip() for c in first]

    def numeric(c: str) -> bool:
        try:
            _number(c)
            return True
        except ValueError:
            return False

    if all(numeric(c) for c in cells):
        return False
    for j, c in enumerate(cells):
        below = [r[j] for r in body[:200] if j < len(r) and not _is_missing(r[j])]
        if not numeric(c) and below and all(numeric(v) for v in below):
            return True
    seen_below = [{r[j].strip() for r in body if j < len(r)} for j in range(len(cells))]
    return len(set(cells)) == len(cells) and all(c and c not in s for c, s in zip(cells, seen_below))


def _check_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DataError(f"{where}: the header names column {n!r} twice; give every column its own name")
        seen.add(n)


def read_csv_rows(path: Path, where: str) -> tuple[list[str], list[list[str]], int]:
    """(names, rows of cells, the file line of the first row) of a CSV or TSV file; one-line
    errors for an empty file, duplicate names and rows of unequal length."""
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{where} is empty: give a .csv with a header row and one row per record")
    header = len(rows) > 1 and _is_header(rows)
    names = [c.strip() or f"column {j}" for j, c in enumerate(rows[0])] if header else [f"column {j}" for j in range(len(rows[0]))]
    _check_names(names, where)
    body = rows[1:] if header else rows
    first_line = 1 + int(header)
    for i, row in enumerate(body):
        if len(row) != len(names):
            raise DataError(f"{where}: line {i + first_line} has {len(row)} cells, the "
                             f"{'header' if header else 'first line'} has {len(names)}; every row needs one cell per column")
    return names, body, first_line


def read_table(path: str | Path, min_rows: int = 2, what: str = "data.path") -> RawTable:
    """A table file as it comes (.csv, .tsv, .parquet with pyarrow, or a .npy array [N, D]).
    ``min_rows``: fewer data rows are refused (training needs 2; a user's inputs may hold 1);
    ``what``: the flag or key that gave the path, for messages."""
    p = Path(path)
    where = f"{what} {str(p)!r}"
    if not p.is_file():
        raise FileNotFoundError(f"{where} does not exist: give a .csv, .parquet or .npy table")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        names, body, first_line = read_csv_rows(p, where)
        table = RawTable(names, [parse_cells([r[j] for r in body]) for j in range(len(names))], where, first_line, text=body)
    elif suffix in (".parquet", ".pq"):
        try:
            import pandas as pd

            frame = pd.read_parquet(p)
        except ImportError:
            raise DataError(f"{where}: reading Parquet needs pyarrow: pip install pyarrow (or save the table as .csv)") from None
        table = frame_table(frame, where)
    elif suffix == ".npy":
        arr = np.load(p)
        if arr.ndim != 2:
            raise DataError(f"{where} holds shape {list(arr.shape)}; expected a table [N, D]")
        arr = np.asarray(arr, dtype=np.float64)
        arr[~np.isfinite(arr)] = np.nan
        table = RawTable([f"column {j}" for j in range(arr.shape[1])], [arr[:, j].copy() for j in range(arr.shape[1])], where)
    else:
        raise DataError(f"{where}: expected a .csv, .tsv, .parquet or .npy table")
    if len(table) < min_rows:
        raise DataError(f"{where} has {len(table)} data row{'s' if len(table) != 1 else ''}; a table to learn from "
                        f"needs at least {min_rows} (and far more to learn well)")
    return table


def frame_table(frame: Any, where: str = "the DataFrame") -> RawTable:
    """A pandas DataFrame as a :class:`RawTable`: number columns as float64, booleans as
    'True'/'False', dates as ISO text, everything else as text; each column's dtype kept."""
    import pandas as pd

    names = [str(c) for c in frame.columns]
    _check_names(names, where)
    cols, dtypes = [], []
    for name in frame.columns:
        s = frame[name]
        dtypes.append(str(s.dtype))
        if pd.api.types.is_bool_dtype(s.dtype):
            cols.append(np.array([None if pd.isna(v) else str(bool(v)) for v in s], dtype=object))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            v = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(na_value=np.nan, copy=True)
            v[~np.isfinite(v)] = np.nan
            cols.append(v)
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            stamps = pd.to_datetime(s)
            fmt = "%Y-%m-%d" if bool((stamps.dropna() == stamps.dropna().dt.normalize()).all()) else "%Y-%m-%d %H:%M:%S"
            cols.append(np.array([None if pd.isna(v) else v.strftime(fmt) for v in stamps], dtype=object))
        else:
            cells = [None if (v is None or (not isinstance(v, str) and pd.isna(v))) else str(v) for v in s]
            cols.append(parse_cells(["" if c is None else c for c in cells]))
            if all(isinstance(v, (bool, np.bool_)) for v in s.dropna()) and s.notna().any():
                dtypes[-1] = "boolean"  # True / False with gaps: pandas keeps them as objects
    return RawTable(names, cols, where, 0, dtypes)


def label_column_index(label_column: int, width: int, where: str) -> int:
    """The 0-based position of ``data.label_column`` (negative counts from the end) among
    ``width`` columns; one line when it is outside them or no feature column would remain."""
    if not -width <= label_column < width or width < 2:
        raise DataError(f"data.label_column {label_column} is outside the {width} columns of {where}")
    return label_column % width


def check_class_labels(labels: np.ndarray, label_column: int, where: str) -> None:
    """One line unless ``labels`` [N] (numbers, or text: refused) are integer class labels 0, 1,
    2, ... in every row."""
    if labels.dtype.kind != "f" or np.isnan(labels).any() or (labels != np.round(labels)).any() or labels.min() < 0:
        raise DataError(f"data.label_column {label_column} of {where} must hold integer class labels 0, 1, 2, ... in every row")


def read_csv_table(path: str | Path, refuse_constant: bool = True) -> tuple[np.ndarray, list[str]]:
    """(values [N, D] float64, column names [D]) of an all-numbers CSV (``data.columns=none``);
    names are the header's, or ``column 0``, ``column 1``, ... when the file has none.
    ``refuse_constant``: training data (a user's inputs to a trained run may hold a constant column)."""
    p = Path(path)
    where = f"data.path {str(p)!r}"
    names, body, first_line = read_csv_rows(p, where)
    values = np.empty((len(body), len(names)))  # a missing cell is NaN
    for i, row in enumerate(body):
        for j, cell in enumerate(row):
            try:
                v = _number(cell)
            except ValueError:
                raise DataError(f"{where}: column {names[j]!r} holds text ({cell.strip()!r} on line {i + first_line}); "
                                 f"drop the column, encode it as numbers or keep data.columns=auto") from None
            values[i, j] = math.nan if v is None else v
    missing = np.isnan(values)
    if missing.any():
        j = int(np.flatnonzero(missing.any(axis=0))[0])
        raise DataError(f"{where}: column {names[j]!r} has {int(missing[:, j].sum())} missing or non-finite "
                         f"cells (first on line {int(np.argmax(missing[:, j])) + first_line}); fill them, drop those rows "
                         f"or keep data.columns=auto")
    constant = (values == values[0]).all(axis=0) if refuse_constant and len(body) >= 2 else np.zeros(len(names), bool)
    if constant.any():
        j = int(np.flatnonzero(constant)[0])
        raise DataError(f"{where}: column {names[j]!r} is constant ({values[0, j]:g} in every row); "
                         f"drop it, it carries no information")
    return values, names
