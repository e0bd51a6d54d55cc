"""A table model in the shape the ecosystem knows (SDV's synthesizers: fit a DataFrame, sample a
DataFrame), on the same pipeline as ``flowmaps train --data table.csv``.

    model = flowmaps.TableModel.fit(df, minutes=2)          # or a .csv / .parquet path
    rows = model.sample(1000)                               # a DataFrame: the input's columns and dtypes
    rows = model.sample(100, where={"species": "Adelie"})   # rows given some columns
    filled = model.impute(df_with_gaps)                     # empty cells filled, the rest kept
    audit = model.audit(heldout_df)                         # fidelity, shapes, pair trends, ML utility...
    model.save("penguins-model"); model = flowmaps.TableModel.load("penguins-model")

A model is a run folder (:mod:`flowmaps.run_folder`); ``flowmaps sample --run``, ``impute`` and
``audit`` work on it too. Every setting is chosen as ``--data`` chooses it (printed to stderr
with ``verbose``); ``settings`` overrides any (``{"train.steps": 500}``).
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from . import pipeline
from .audit import Audit
from .autoconfig import format_choices
from .data.columns import TableTransform
from .data.tables import frame_table
from .errors import UsageError
from .impute import IMPUTE_DRAWS, IMPUTE_STEPS, impute
from .run import Run, load_run
from .run_folder import RunFolder
from .train.checkpoint import write_text_atomic


class TableModel:
    """A flow map trained on a table, kept in the run folder ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._run: Run | None = None

    # -- training -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, data: Any, minutes: float | None = 2.0, out: str | Path | None = None, columns: dict[str, str] | None = None,
            seed: int = 0, settings: dict[str, Any] | None = None, verbose: bool = False) -> TableModel:
        """Train on ``data`` (a pandas DataFrame, or a .csv / .parquet path) for ``minutes`` and
        return the model in ``out`` (default: a new folder under runs/); ``minutes=None`` with
        ``settings={"train.steps": S}`` trains S steps instead. ``columns``: types by
        column name, as ``data.columns`` takes them ({"zip": "category"}); ``settings``: any config
        key, as ``--set`` takes it; ``verbose``: print the choices and training progress."""
        over = [f"seed={seed}"] + [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in (settings or {}).items()]
        if columns:
            over.append("data.columns=" + ",".join(f"{k}:{v}" for k, v in columns.items()))
        is_frame = not isinstance(data, (str, Path))
        stem = "table" if is_frame else Path(data).stem
        folder = Path(out) if out is not None else Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        if RunFolder(folder).is_run():
            raise FileExistsError(f"{folder} already holds a run; load it with TableModel.load or choose another out")
        if is_frame:
            path = _write_frame(data, RunFolder(folder))
        else:
            path = Path(data)
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(io.StringIO())
        with quiet:
            setup = pipeline.configure(data=str(path), minutes=minutes, overrides=over)
            trainer = pipeline.start_training(setup, folder)
            if verbose and setup.choices is not None:
                print(format_choices(setup.choices, setup.overridden))
                print("\n".join(trainer.source.columns.summary()))
            trainer.fit()
            pipeline.finish(trainer, report=True)
        return cls(folder)

    @classmethod
    def load(cls, path: str | Path) -> TableModel:
        """The model in run folder ``path`` (trained on a table)."""
        model = cls(path)
        if model.run.columns is None:
            raise UsageError(f"{str(path)!r} is a run on {model.run.cfg.data.name}, not on a table")
        return model

    def save(self, path: str | Path) -> TableModel:
        """Copy the model to the run folder ``path`` (new) and return the copy; a DataFrame it was
        trained on moves with it."""
        dest = Path(path)
        if dest.exists():
            raise FileExistsError(f"{dest} exists; save to a new folder")
        shutil.copytree(self.path, dest)
        folder = RunFolder(dest)
        cfg = folder.read_config()
        if cfg.data.path and Path(cfg.data.path).resolve() == RunFolder(self.path).table_data.resolve():
            text = folder.config.read_text().replace(str(cfg.data.path), str(folder.table_data))
            write_text_atomic(folder.config, text)
        return TableModel(dest)

    # -- the trained map ----------------------------------------------------------------------------
    @property
    def run(self) -> Run:
        if self._run is None:
            self._run = load_run(self.path)
            dtypes = RunFolder(self.path).table_dtypes
            if dtypes.is_file() and self._run.columns is not None:
                hints = json.loads(dtypes.read_text())
                for c in self._run.columns.columns:
                    c.dtype = hints.get(c.name, c.dtype)
        return self._run

    @property
    def columns(self) -> TableTransform:
        """How each column is modelled (:mod:`flowmaps.data.columns`)."""
        table = self.run.columns
        assert table is not None
        return table

    def sample(self, n: int, steps: int = 1, seed: int = 0, where: dict[str, Any] | str | None = None) -> Any:
        """n rows as a DataFrame with the input's columns, dtypes and empty cells, from ``steps``
        network calls each; ``where``: rows whose given columns hold these values (inpainting,
        ``steps`` calls)."""
        cond = ",".join(f"{k}={v}" for k, v in where.items()) if isinstance(where, dict) else where
        drawn = pipeline.draw_samples(self.run, steps, n, seed, where=cond)
        return self.columns.frame(drawn.x, seed)

    def impute(self, frame: Any, steps: int = IMPUTE_STEPS, draws: int = IMPUTE_DRAWS, seed: int = 0) -> Any:
        """``frame`` (a DataFrame with the model's columns) with every empty cell of a modelled
        column filled by the map (:func:`flowmaps.impute.impute`); every other cell as it was."""
        view = self.columns.parse(frame_table(frame))
        filled = self.columns.frame(impute(self.run, view, steps, draws, seed), seed)
        filled.index = frame.index
        out = frame.copy()
        for c in self.columns.columns:
            if c.modelled and c.name in out.columns:
                out[c.name] = out[c.name].where(out[c.name].notna(), filled[c.name])
        return out

    def audit(self, heldout: Any = None, steps: tuple[int, ...] = (1, 4), num: int = 1000, target: str | None = None,
              seed: int = 0) -> Audit:
        """The audit against ``heldout`` rows (a DataFrame or a table file; default: the rows the
        training held out), at each of ``steps``; ``target``: the column ML utility predicts."""
        with tempfile.TemporaryDirectory() as tmp:
            path = None
            if heldout is not None and not isinstance(heldout, (str, Path)):
                path = str(Path(tmp) / "heldout.csv")
                heldout.to_csv(path, index=False)
            elif heldout is not None:
                path = str(heldout)
            return pipeline.audit_saved(self.path, list(steps), num, path, seed=seed, target=target).audit

    def __repr__(self) -> str:
        return f"TableModel({str(self.path)!r})"


def _write_frame(frame: Any, folder: RunFolder) -> Path:
    """A DataFrame as the run's table.csv (and its dtypes beside it), atomically."""
    raw = frame_table(frame)  # refuses duplicate names in one line
    if len(raw) < 2:
        raise UsageError(f"the DataFrame has {len(raw)} row(s); a table to learn from needs at least 2")
    folder.path.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    write_text_atomic(folder.table_data, buf.getvalue())
    write_text_atomic(folder.table_dtypes, json.dumps(dict(zip(raw.names, raw.dtypes))))
    return folder.table_data
