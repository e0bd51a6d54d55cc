"""Tables of numbers from CSV files: a header row (optional), one column per feature.

Every cell must be a finite number. A bad table is refused with one line that names the column
and the fix, before anything is written: a text column, missing cells (empty, NaN or Inf) and a
constant column (it carries no information and has no scale to standardise by).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import DataError

MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "inf", "-inf", "+inf", "infinity", "-infinity"})


def _number(cell: str) -> float | None:
    """The cell as a finite float; None for a missing cell; raises ValueError for text."""
    text = cell.strip()
    if text.lower() in MISSING:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _is_header(row: list[str]) -> bool:
    """A first row with any non-numeric, non-missing cell is a header."""
    for cell in row:
        try:
            _number(cell)
        except ValueError:
            return True
    return False


def read_csv_table(path: str | Path, refuse_constant: bool = True) -> tuple[np.ndarray, list[str]]:
    """(values [N, D] float64, column names [D]) of a comma-separated file; names are the header's,
    or ``column 0``, ``column 1``, ... when the file has none. ``refuse_constant``: training data
    (a user's inputs to a trained run may hold a constant column)."""
    p = Path(path)
    with open(p, newline="") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"data.path {str(p)!r} is empty: give a .csv with one row per point")
    header = _is_header(rows[0])
    names = [c.strip() or f"column {j}" for j, c in enumerate(rows[0])] if header else [f"column {j}" for j in range(len(rows[0]))]
    body = rows[1:] if header else rows
    width = len(names)
    first_line = 1 + int(header)  # the 1-based file line of body row 0
    values = np.empty((len(body), width))  # a missing cell is NaN
    for i, row in enumerate(body):
        if len(row) != width:
            raise DataError(f"data.path {str(p)!r}: line {i + first_line} has {len(row)} cells, the "
                             f"{'header' if header else 'first line'} has {width}; every row needs one cell per column")
        for j, cell in enumerate(row):
            try:
                v = _number(cell)
            except ValueError:
                raise DataError(f"data.path {str(p)!r}: column {names[j]!r} holds text ({cell.strip()!r} on line "
                                 f"{i + first_line}); drop the column or encode it as numbers") from None
            values[i, j] = math.nan if v is None else v
    missing = np.isnan(values)
    if missing.any():
        j = int(np.flatnonzero(missing.any(axis=0))[0])
        raise DataError(f"data.path {str(p)!r}: column {names[j]!r} has {int(missing[:, j].sum())} missing or non-finite "
                         f"cells (first on line {int(np.argmax(missing[:, j])) + first_line}); fill them or drop those rows")
    constant = (values == values[0]).all(axis=0) if refuse_constant and len(body) >= 2 else np.zeros(width, bool)
    if constant.any():
        j = int(np.flatnonzero(constant)[0])
        raise DataError(f"data.path {str(p)!r}: column {names[j]!r} is constant ({values[0, j]:g} in every row); "
                         f"drop it, it carries no information")
    return values, names
