"""What ``flowmaps train``, ``eval``, ``sample`` and ``audit`` do, as functions that the CLI and the
benchmarks both call: configure a run, start and finish training, evaluate or audit a saved
run, draw samples. Nothing here prints; each step returns what happened and the CLI says it.

    setup = configure(data="points.csv", minutes=3)          # or preset= / config= / resume=
    trainer = start_training(setup.cfg, out)                  # flowmaps.train.trainer.Trainer
    trainer.fit()
    finished = finish(trainer)                                # weights chosen, eval.json, report
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import step_timing
from .audit import MAX_AUDIT_ITEMS, Audit, audit_run, audited_after_training, write_audit
from .autoconfig import NAMED_SHAPES, as_layer, auto_config
from .averages import power_name
from .config import Config, build_config, load_yaml, parse_overrides, preset
from .data.images import IMAGE_DATASETS
from .data.tables import read_table
from .ema_selection import EMASelection, choose_weights
from .errors import UsageError
from .evaluate import EvalOptions, evaluate_run, generate, write_eval
from .impute import impute, sample_where, table_of
from .inputs import read_inputs, save_csv, save_npy, write_csv
from .kinds import data_kind
from .plots import plot_training
from .recipes import Choice
from .report import write_report
from .run import Run, load_run, weights_for
from .run_folder import RunFolder
from .train.builders import build_data, build_flow_map, count_parameters
from .train.checkpoint import load_checkpoint, newest_intact_checkpoint, write_text_atomic
from .train.snapshots import list_snapshots, reconstruct_emas
from .train.trainer import Trainer


def flat_keys(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """The dotted keys of a nested layer: {"train": {"lr": 1}} -> ["train.lr"]."""
    out: list[str] = []
    for k, v in tree.items():
        out += flat_keys(v, prefix + (k,)) if isinstance(v, dict) else [".".join(prefix + (k,))]
    return out


# -- configure and train ------------------------------------------------------------------------

@dataclass
class Setup:
    """A run's config and where it came from: ``choices``, autoconfig's (``--data``, else None),
    and the keys the user set (``overridden``), which those choices yield to."""

    cfg: Config
    choices: list[Choice] | None = None
    overridden: set[str] = field(default_factory=set)


def configure(data: str | None = None, preset_name: str | None = None, config: str | None = None,
              resume: bool = False, out: str | Path | None = None, minutes: float | None = None,
              overrides: list[str] | None = None) -> Setup:
    """The config of a new run from ``data`` (every setting chosen for it, this device and the
    budget), a preset or a YAML file, or, to ``resume`` without a preset or file, the config the
    run folder ``out`` saved; ``minutes`` and ``overrides`` (``key=value``) on top. One-line
    errors for a contradictory request."""
    over = parse_overrides(overrides or [])
    if minutes is not None and not minutes > 0:
        raise UsageError(f"--minutes must be positive, got {minutes}")
    layers: list[dict[str, Any]] = []
    choices = None
    if data:
        if resume:
            raise UsageError("--resume continues a run from its saved config: pass --out DIR without --data")
        train_over = over.get("train", {})
        # a budget's image recipe is timed here unless the run has a step count or its own network or
        # batch, or runs in several processes (each would time its own and they could disagree)
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        by_steps = "steps" in train_over and minutes is None
        timed = not by_steps and "net" not in over and "batch_size" not in train_over and processes == 1
        choices = auto_config(data, minutes, device=str(train_over.get("device", "auto")), processes=processes,
                              resolution=over.get("data", {}).get("resolution"), step_timer=step_timing.step_seconds if timed else None)
        if by_steps:
            choices = [c for c in choices if c.key != "train.minutes"]
        layers.append(as_layer(choices))
    elif resume and not preset_name and not config:
        if not out:
            raise UsageError("--resume needs --out: the run folder to continue")
        cfg_file = RunFolder(out).config
        if not cfg_file.is_file():
            raise UsageError(f"--resume: {cfg_file} does not exist; is {out} a run folder?")
        layers.append(load_yaml(cfg_file))
    elif preset_name:
        layers.append(preset(preset_name))
    elif config:
        layers.append(load_yaml(config))
    else:
        raise UsageError("train needs --data PATH, --preset NAME or --config FILE (see 'flowmaps info')")
    if minutes is not None and not data:
        layers.append({"train": {"minutes": minutes}})
    layers.append(over)
    return Setup(build_config(*layers), choices, set(flat_keys(over)))


def default_out(setup: Setup, data: str | None, preset_name: str | None, config: str | None) -> Path:
    """runs/<data>-<method>-<time> for ``--data`` (a new folder each time), else
    runs/<preset-or-config>-<method>."""
    method = setup.cfg.method
    if data:
        stem = Path(data.rstrip("/")).stem or "data"
        return Path("runs") / f"{stem}-{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem = preset_name or (Path(config).stem if config else "run")
    return Path("runs") / f"{stem}-{method}"


def start_training(setup: Setup | Config, out: str | Path, resume: bool = False) -> Trainer:
    """A trainer for the run in ``out`` (its files written, or read back for ``resume``), with
    periodic evaluation hooked in and autoconfig's choices saved beside the config."""
    cfg = setup.cfg if isinstance(setup, Setup) else setup
    trainer = Trainer(cfg, out, resume=resume)
    trainer.periodic_eval = periodic_eval
    if isinstance(setup, Setup) and setup.choices is not None and trainer.dist.is_main:
        write_text_atomic(RunFolder(out).autoconfig, json.dumps(
            [{"key": c.key, "value": c.value, "why": c.why} for c in setup.choices], indent=2))
    return trainer


def periodic_eval(trainer: Trainer) -> None:
    """A quick evaluation during training (``train.eval_every``): the widest tracked average for
    ``eval.ema: auto`` (the choice among all is made at the end); appended to eval_history.jsonl."""
    name = trainer.cfg.eval.ema
    if name == "auto":
        name = trainer.ema.names[-1] if trainer.ema.names else "raw"
    result = evaluate_run(trainer.as_run(name), trainer.source, EvalOptions(tag=f"step-{trainer.step:08d}", quick=True))
    with open(trainer.folder.eval_history, "a") as f:
        f.write(json.dumps({"step": trainer.step, **result}) + "\n")


@dataclass
class Finished:
    """After training: the evaluation (eval.json's content), how the weights were chosen, the
    audit (when training ends with one), the files written and the report."""

    result: dict[str, Any]
    ema: str
    selection: EMASelection | None
    audit: Audit | None
    written: list[Path]
    report: Path | None


def finish(trainer: Trainer, options: EvalOptions | None = None, report: bool = True, audit: bool = True) -> Finished:
    """Choose the weights, evaluate, audit (when cheap), write eval.json, the training plot and the report."""
    cfg, out, folder = trainer.cfg, trainer.out, trainer.folder
    name, selection = choose_weights(trainer.fm, trainer.ema.flat(), cfg, trainer.source, trainer.sigma,
                                     tuple(trainer.source.shape), out)
    run = trainer.as_run(name)
    result = evaluate_run(run, trainer.source, options)
    if selection is not None:
        result["ema_selection"] = selection.as_dict()
    checked = audit_after_training(run, trainer.source) if audit else None
    if checked is not None:
        result["audit"] = checked.as_dict()
    write_eval(result, folder.evaluation)
    if folder.metrics.is_file():
        plot_training(folder.read_jsonl(folder.metrics), folder.training_plot)
    page = write_report(out) if report else None
    written = [p for p in (folder.evaluation, *folder.sample_grids(options.tag if options else "final"),
                           folder.training_plot) if p.is_file()]
    return Finished(result, name, selection, checked, written, page)


def audit_after_training(run: Run, source: Any) -> Audit | None:
    """The audit a finished run gets (:func:`flowmaps.audit.audited_after_training` says which),
    written to audit.json (and the marginals of points); None when it gets none."""
    cfg = run.cfg
    if not audited_after_training(cfg, source):
        return None
    steps = sorted({1, *([4] if 4 in cfg.eval.steps else [])})
    return _audit(run, steps, min(cfg.eval.num_samples, MAX_AUDIT_ITEMS), None, cfg.eval.seed)[0]


def _audit(run: Run, steps: list[int], num: int, heldout: Tensor | None, seed: int,
           target: str | None = None) -> tuple[Audit, list[Path]]:
    """Audit ``run`` and write audit.json (and, for points, the marginals' picture); returns the
    audit and the files written."""
    folder = run.folder
    marginals = folder.audit_marginals if len(run.shape) == 1 else None
    nearest = folder.audit_nearest if len(run.shape) == 3 else None
    checked = audit_run(run, steps, num, heldout, seed, marginals=marginals, target=target, nearest_out=nearest)
    write_audit(checked, folder.audit)
    return checked, [folder.audit, *(p for p in (marginals, nearest) if p is not None and p.is_file())]


# -- a saved run ----------------------------------------------------------------------------------

EVAL_DATA_KEYS = frozenset({"data.path", "data.cache", "data.decoder"})
"""The data keys ``flowmaps eval --set`` may change (where the data and its decoder live)."""


@dataclass
class Evaluated:
    """A saved run's evaluation: the results (written to eval.json), the run, how its weights were
    chosen again (``--ema auto``) and why its training data were unavailable (None: they were)."""

    result: dict[str, Any]
    run: Run
    selection: EMASelection | None
    data_missing: str | None


def evaluate_saved(run_dir: str | Path, options: EvalOptions, ema: str | None = None, num: int | None = None,
                   overrides: list[str] | None = None) -> Evaluated:
    """Evaluate run ``run_dir`` again (``ema``: as for sampling, ``auto`` to choose again among
    raw, tracked and reconstructed averages; ``num``: samples; ``overrides``: eval.* keys and
    where the data live), writing eval.json."""
    run = load_run(run_dir, ema=None if ema == "auto" else ema)
    cfg = run.cfg
    if overrides:
        over = parse_overrides(overrides)
        fixed = [k for k in flat_keys(over) if not k.startswith("eval.") and ".".join(k.split(".")[:2]) not in EVAL_DATA_KEYS]
        if fixed:
            raise UsageError(f"eval --set {fixed[0]}: a trained run's model is fixed; eval changes only eval.* and "
                             f"{', '.join(sorted(EVAL_DATA_KEYS))}")
        cfg = run.cfg = build_config(cfg.to_dict(), over)
    if num:
        cfg.eval.num_samples = num
    missing = None
    try:
        source = build_data(cfg)
    except FileNotFoundError as e:  # MissingDataError among them
        if len(run.shape) == 1:
            raise
        source, missing = None, str(e).splitlines()[0]
    selection = None
    if ema == "auto":
        raw, flat, _ = load_checkpoint(newest_intact_checkpoint(run.folder.checkpoints, quiet=True))  # type: ignore[arg-type]
        run.fm.load_state_dict(raw)
        cfg.eval.ema = "auto"
        run.ema, selection = choose_weights(run.fm, flat, cfg, source, run.sigma, run.shape, run.path)
        run.fm.load_state_dict(weights_for(run.ema, raw, flat, run.path))
    result = evaluate_run(run, source, options)
    if selection is not None:
        result["ema_selection"] = selection.as_dict()
    write_eval(result, run.folder.evaluation)
    return Evaluated(result, run, selection, missing)


@dataclass
class AuditWritten:
    """A saved run's audit and the files written (audit.json, the marginals, and eval.json and the
    report when the run has been evaluated)."""

    audit: Audit
    run: Run
    written: list[Path]


def audit_saved(run_dir: str | Path, steps: list[int], num: int, heldout: str | None = None, ema: str | None = None,
                seed: int = 0, target: str | None = None) -> AuditWritten:
    """Audit run ``run_dir`` at ``steps`` with ``num`` generated items against its held-out split
    (or the rows of the file ``heldout``); the audit joins eval.json and the report."""
    if num < 2 or any(n < 1 for n in steps):
        raise UsageError("--num must be at least 2 and every --steps positive")
    run = load_run(run_dir, ema=ema)
    held = read_inputs(heldout, run.shape, "--heldout", table=run.columns)[0] if heldout else None
    checked, written = _audit(run, steps, num, held, seed, target)
    folder = run.folder
    if folder.evaluation.is_file():  # the same section in eval.json and the report
        result = json.loads(folder.evaluation.read_text())
        result["audit"] = checked.as_dict()
        write_eval(result, folder.evaluation)
        written += [folder.evaluation, write_report(run.path)]
    return AuditWritten(checked, run, written)


# -- samples --------------------------------------------------------------------------------------

def parse_classes(text: str | None, num_classes: int) -> list[int]:
    """--class: '3', '0,1,2' or 'all' -> class indices, checked against the run."""
    if text is None:
        return []
    if not num_classes:
        raise UsageError("--class needs a class-conditional run (trained with data.conditional=true)")
    if text.strip() == "all":
        return list(range(num_classes))
    try:
        classes = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--class {text!r}: expected a class number, comma-separated numbers or 'all'") from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if not classes or bad:
        raise UsageError(f"--class {text!r}: this run has classes 0..{num_classes - 1}")
    return classes


@dataclass
class Drawn:
    """Samples [n, *shape] in the data's scale, the classes asked for ([] unconditional; each
    class gets the same noise), their labels [n] and what drew them (solver, N, weights...)."""

    x: Tensor
    classes: list[int]
    labels: Tensor | None
    per_class: int
    what: str
    seed: int = 0


SAMPLE_SUFFIXES = (".npy", ".png", ".csv")


def draw_samples(run: Run, steps: int, num: int = 64, seed: int = 0, noise: str | None = None, solver: str = "map",
                 classes: str | None = None, guidance: float | None = None, where: str | None = None) -> Drawn:
    """Samples of ``run`` at N = ``steps`` from ``num`` seeded draws (or the standard-normal draws in
    the .npy ``noise``), for the ``classes`` of a class-conditional run (--class syntax); a table
    run's rows ``where`` some columns hold given values (:func:`flowmaps.impute.sample_where`)."""
    if steps < 1 or num < 1:
        raise UsageError("--steps and --num must be positive")
    if where is not None:
        if noise or classes or solver != "map":
            raise UsageError("--where draws with the map from its own noise: drop --noise, --class and --solver")
        x = sample_where(run, where, num, steps, seed)
        return Drawn(x, [], None, num, f"map, N = {steps} per inpainting call, EMA {run.ema}, where {where}", seed)
    chosen = parse_classes(classes, run.num_classes if run.cfg.data.conditional else 0)
    if guidance is not None and not chosen:
        raise UsageError("--guidance needs --class (a class-conditional run)")
    if run.cfg.data.conditional and not chosen:
        raise UsageError(f"this run is class-conditional: pass --class (0..{run.num_classes - 1}, comma-separated, or all)")
    if noise:
        p = Path(noise)
        if not p.is_file():
            raise UsageError(f"--noise {noise!r} does not exist")
        z = torch.from_numpy(np.load(p)).float()
        if tuple(z.shape[1:]) != run.shape or z.ndim != len(run.shape) + 1:
            raise UsageError(f"--noise has shape {list(z.shape)}; this run needs [num, {', '.join(map(str, run.shape))}]")
    else:
        z = torch.randn(num, *run.shape, generator=torch.Generator().manual_seed(seed))
    per_class = z.shape[0]
    labels = None
    if chosen:  # the same noise for every class
        labels = torch.tensor(chosen).repeat_interleave(per_class)
        z = z.repeat(len(chosen), *([1] * len(run.shape)))
    try:
        x = generate(run.fm, run.sigma * z, steps, solver, run.cfg.eval.batch_size, labels, guidance)
    except ValueError as e:
        raise UsageError(str(e)) from None
    what = f"{solver}, N = {steps}, EMA {run.ema}"
    if chosen:
        what += f", classes {','.join(map(str, chosen))}, guidance {1.0 if guidance is None else guidance:g}"
    return Drawn(run.to_data(x), chosen, labels, per_class, what, seed)  # array data and tables: the input's scale


def save_samples(run: Run, drawn: Drawn, out: Path, steps: int, solver: str) -> None:
    """Samples to a .npy, a .csv (points) or a .png (the data kind's picture: one row per class)."""
    if out.suffix == ".npy":
        save_npy(drawn.x, out)
    elif out.suffix == ".csv":
        if len(run.shape) != 1:
            raise UsageError(f"--out {str(out)!r}: a .csv holds points [N, D]; this run's items have shape "
                             f"{list(run.shape)}, use .npy")
        save_csv(drawn.x, out, run.column_names, drawn.labels, table=run.columns, seed=drawn.seed)
    else:
        rows = ({f"class {c}": part for c, part in zip(drawn.classes, drawn.x.split(drawn.per_class))} if drawn.classes
                else {f"{run.cfg.method} ({solver})": drawn.x})
        data_kind(run.cfg, run.shape).draw(rows, out, steps, square=not drawn.classes)


def impute_table(run_dir: str | Path, table_file: str, out: Path, steps: int, draws: int, seed: int = 0,
                 ema: str | None = None) -> tuple[int, int]:
    """Fill the empty cells of ``table_file`` with run ``run_dir``'s map and write the table to
    ``out`` (CSV): every known cell as it was written, each filled one in the column's format.
    Returns (cells filled, rows)."""
    if out.suffix.lower() != ".csv":
        raise UsageError(f"--out {str(out)!r}: imputation writes a .csv")
    if not out.parent.exists():
        raise UsageError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")
    run = load_run(run_dir, ema=ema)
    table = table_of(run)
    raw = read_table(table_file, min_rows=1, what="--input")
    view = table.parse(raw)
    cells = table.cells(impute(run, view, steps, draws, seed), seed)
    empty = torch.isnan(view).numpy()
    modelled = {c.name: k for k, c in enumerate(table.columns) if c.modelled}
    columns = []
    for j, name in enumerate(raw.names):  # the input's columns, in its order; known cells untouched
        given = ([r[j] for r in raw.text] if raw.text is not None else
                 [None if (c is None or (isinstance(c, float) and np.isnan(c))) else _cell_text(c) for c in raw.columns[j]])
        if name in modelled:
            k = modelled[name]
            given = [cells[k][i] if empty[i, k] else g for i, g in enumerate(given)]
        columns.append(given)
    write_csv(out, raw.names, (["" if c is None else c for c in row] for row in zip(*columns)))
    return int(empty[:, list(modelled.values())].sum()), len(raw)


def _cell_text(c: object) -> str:
    """A cell of a table as read, written back: text as it was, a number without a trailing .0."""
    if isinstance(c, float):
        return f"{c:.0f}" if c == round(c) and abs(c) < 1e15 else repr(float(c))
    return str(c)


# -- weights and sizes ----------------------------------------------------------------------------

def export_emas(run_dir: str | Path, sigma_rels: list[float], step: int | None = None) -> list[tuple[float, dict[str, Any], Path]]:
    """Reconstruct power EMAs of ``sigma_rels`` (at ``step``, default the last snapshot's) from the
    run's snapshots and write each as RUN/ema/sigma_rel=X.safetensors (atomically); returns
    (sigma_rel, what was combined, path) for each."""
    from safetensors.torch import save_file

    run = load_run(run_dir, ema="raw")
    snap_dir = run.folder.ema_snapshots
    if not list_snapshots(snap_dir):
        raise UsageError(f"{str(run_dir)!r} has no EMA snapshots; train with train.ema_snapshots > 0 and train.ema_sigma_rel set")
    out_dir = run.folder.posthoc_ema
    out_dir.mkdir(exist_ok=True)
    try:
        rebuilt = reconstruct_emas(snap_dir, sigma_rels, step)
    except ValueError as e:
        raise UsageError(f"--sigma-rel {' '.join(map(str, sigma_rels))}: {e}") from None
    written = []
    for sr, (state, info) in zip(sigma_rels, rebuilt):
        path = out_dir / f"{power_name(sr)}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"step": str(info["step"])})
        tmp.replace(path)
        written.append((sr, info, path))
    return written


def parameter_count(cfg: Config) -> int:
    """The network parameters of ``cfg`` (a named image set at its size, a folder at
    ``data.resolution``, else 2-D points), counted on the meta device: instant, no memory."""
    if cfg.data.name in IMAGE_DATASETS:
        side = cfg.data.resolution or 64
        shape = NAMED_SHAPES.get(cfg.data.name, (3, side, side))
    else:
        shape = (2,)
    with torch.device("meta"):
        return count_parameters(build_flow_map(cfg, shape, 10, 1.0))
