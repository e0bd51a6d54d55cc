"""The ``flowmaps`` command: train, sample, eval, report, ema, info, and edit, encode, decode, score.

    flowmaps train (--data PATH | --preset NAME | --config FILE) [--minutes M] [--out DIR] [--set key=value ...] [--resume]
    flowmaps sample --run DIR --steps N [--num M] [--seed S] [--noise FILE.npy] [--solver map|euler|heun]
                    [--ema DECAY] [--class 3 | 0,1,2 | all] [--guidance ALPHA] [--where COL=VALUE,...]
                    --out FILE.npy|FILE.csv|FILE.png
    flowmaps eval --run DIR [--steps 1,2,4,8,16] [--metric NAME ...] [--solver map,euler,heun]
    flowmaps impute --run DIR --input TABLE.csv --out FILLED.csv [--steps N] [--draws K]
    flowmaps report --run DIR [--out FILE.html]
    flowmaps ema --run DIR --sigma-rel 0.05 [0.1 ...] [--step K]
    flowmaps edit | encode | decode | score --run DIR --input X ...   (see flowmaps.cli_inputs)
    flowmaps info [--preset NAME | --run DIR]

A user's error (:mod:`flowmaps.errors`, or a path that does not exist; a full disk, a run folder
another process trains into, a damaged checkpoint) prints one line and exits with status 2, a
diverged run with 3; training stopped by a signal writes a checkpoint, prints the resume command
and exits with 128 + the signal (130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1); anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from . import pipeline
from .autoconfig import format_choices
from .cli_inputs import HANDLERS, add_parsers
from .config import PRESETS, build_config, dump_yaml, preset
from .errors import FlowmapsError, Interrupted, RunError, TrainingDiverged, UsageError
from .evaluate import EvalOptions, format_table
from .feature_anomaly import train_anomaly
from .impute import IMPUTE_DRAWS, IMPUTE_STEPS
from .losses.objective import METHODS
from .picture_codes import code_overrides, code_pictures
from .report import write_report
from .run import load_run
from .run_folder import RunFolder
from .train.budget import budget_summary
from .train.checkpoint import is_no_space, list_checkpoints, verify_checkpoint
from .train.distributed import exit_now, shutdown
from .train.lock import acquire_run_lock, lock_status, release_run_lock
from .train.snapshots import list_snapshots


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,4, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"step counts must be positive integers, got {text!r}")
    return vals


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="flowmaps", description="Flow maps trained by self-distillation (LSD, ESD, PSD, ...).")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a flow map from a data path, a preset or a YAML config")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--data", help="a .npy/.csv point cloud, a folder of images or a named set: every setting is "
                                    "chosen automatically (printed before training; --set overrides any)")
    src.add_argument("--preset", help="a preset name (see 'flowmaps info')")
    src.add_argument("--config", help="a YAML config file")
    t.add_argument("--minutes", type=float, help="train for this wall-clock budget (the step count is measured and saved)")
    t.add_argument("--out", help="run folder (default runs/<preset-or-config>-<method>, or runs/<data>-<method>-<time> with --data)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=500 (repeatable)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    t.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    t.add_argument("--code", default="none", choices=["none", "patch"],
                   help="patch (with --data FOLDER of pictures): train on a linear code of 4 x 4 patches fitted to the "
                        "pictures, from the codes' closed-form Gaussian map; samples decode to pictures")
    t.add_argument("--code-patch", type=int, default=4, metavar="P",
                   help="--code patch: the patch side in pixels (default 4; the picture's side: one whole-picture PCA)")
    t.add_argument("--code-kind", default="pca", choices=["pca", "dct"], help="--code patch: the patches' basis")
    t.add_argument("--code-scaling", default="coefficient", choices=["coefficient", "none"],
                   help="--code patch: coefficient (each kept coefficient to unit variance) or none (as they are)")
    t.add_argument("--task", default="generate", choices=["generate", "anomaly"],
                   help="generate (default): a flow map on the data; anomaly: with --data FOLDER of normal pictures, flow "
                        "maps on a pretrained network's features, for 'flowmaps score' (needs flowmaps[features])")

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("--run", required=True)
    s.add_argument("--steps", type=int, required=True, help="number of steps N")
    s.add_argument("--num", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--noise", help="a .npy of standard-normal draws [num, *shape]; scaled by the run's sigma")
    s.add_argument("--solver", default="map", choices=["map", "euler", "heun", "rk4"])
    s.add_argument("--ema", help="weights: raw, a tracked decay like 0.999, sigma_rel=0.05 (tracked or reconstructed); "
                                 "default: the run's eval.ema or the one its evaluation chose")
    s.add_argument("--class", dest="classes", help="class-conditional runs: a class, comma-separated classes or "
                                                  "'all' (--num samples each; a PNG has one row per class)")
    s.add_argument("--guidance", type=float, help="guidance scale alpha (0: unconditional, 1: conditional, > 1: "
                                                  "guided); the map's input, or classifier-free guidance for ODE solvers")
    s.add_argument("--where", help="tables: rows whose columns hold these values, e.g. species=Adelie,island=Biscoe "
                                   "(the other columns generated by inpainting; N calls per row)")
    s.add_argument("--out", required=True, help="FILE.npy (samples), FILE.csv (tables: the input's columns and format) "
                                                "or FILE.png (a plot or image grid)")

    im = sub.add_parser("impute", help="tables: fill the empty cells of a table with a trained run's map")
    im.add_argument("--run", required=True)
    im.add_argument("--input", required=True, help="a table with the run's columns (.csv, .parquet); empty cells are filled")
    im.add_argument("--out", required=True, help="FILE.csv: the input with its empty cells filled, every other cell as it was")
    im.add_argument("--steps", type=int, default=IMPUTE_STEPS, help=f"network calls per draw (default {IMPUTE_STEPS})")
    im.add_argument("--draws", type=int, default=IMPUTE_DRAWS, help=f"draws per cell: numbers averaged, categories by "
                                                                    f"majority (default {IMPUTE_DRAWS}; 1: one plausible draw)")
    im.add_argument("--ema", help="as for sample")
    im.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("eval", help="evaluate a trained run at several step counts")
    e.add_argument("--run", required=True)
    e.add_argument("--steps", type=_int_list, help="comma-separated N, default the run's eval.steps")
    e.add_argument("--metric", action="append", help="a metric name (repeatable); default auto")
    e.add_argument("--solver", help="comma-separated: map, euler, heun, rk4 (default: map; euler,heun for method fm)")
    e.add_argument("--ema", help="as for sample; auto: choose again among raw, tracked and reconstructed EMAs")
    e.add_argument("--num", type=int, help="number of samples (default the run's eval.num_samples)")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change an eval.* key, or data.path / data.cache / data.decoder, for this evaluation "
                        "(e.g. eval.fid_reference=stats.npz)")

    a = sub.add_parser("audit", help="audit a run against held-out data: fidelity, coverage, memorisation, validity")
    a.add_argument("--run", required=True)
    a.add_argument("--steps", type=_int_list, default=[1, 4], help="comma-separated N (default 1,4)")
    a.add_argument("--num", type=int, default=1000, help="generated items per N (at most 1,000)")
    a.add_argument("--heldout", help="rows the run never saw (.csv or .npy, the data's scale); default: the run's "
                                     "data.holdout split")
    a.add_argument("--ema", help="as for sample")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--target", help="tables: the column machine-learning utility predicts (default: the last category)")

    r = sub.add_parser("report", help="write a self-contained HTML report of a run")
    r.add_argument("--run", required=True)
    r.add_argument("--out", help="HTML file (default RUN/report.html)")

    m = sub.add_parser("ema", help="post-hoc EMA: build the weights of any power EMA from a run's snapshots")
    m.add_argument("--run", required=True)
    m.add_argument("--sigma-rel", type=float, nargs="+", required=True, help="relative standard deviations, e.g. 0.05 0.1")
    m.add_argument("--step", type=int, help="the step to reconstruct at (default: the last snapshot's)")

    add_parsers(sub)
    i = sub.add_parser("info", help="list presets and methods, show one preset, or a run folder's checkpoints and lock")
    i.add_argument("--preset")
    i.add_argument("--run", help="a run folder: its checkpoints (each verified against its manifest), snapshots and lock")
    return ap


def cmd_train(args: argparse.Namespace) -> int:
    if args.task == "anomaly":
        return _train_anomaly(args)
    if args.code != "patch" and (args.code_patch, args.code_kind, args.code_scaling) != (4, "pca", "coefficient"):
        raise UsageError("--code-patch, --code-kind and --code-scaling go with --code patch")
    if args.code == "patch":
        if not args.data or not Path(args.data).is_dir():
            raise UsageError("--code patch needs --data FOLDER: a folder of pictures")
        if args.resume:
            raise UsageError("--code patch starts a run; resume it with --resume --out DIR alone")
        out = _picture_run_out(args, "code")
        with _training_lock(out):  # no second start writes the code while this one does
            _code_pictures(args, out)
            return _configure_and_train(args)
    return _configure_and_train(args)


def _configure_and_train(args: argparse.Namespace) -> int:
    setup = pipeline.configure(args.data, args.preset, args.config, args.resume, args.out, args.minutes, args.overrides)
    out = Path(args.out) if args.out else pipeline.default_out(setup, args.data, args.preset, args.config)
    with _training_lock(out):
        return _train(args, setup, out)


@contextlib.contextmanager
def _training_lock(out: Path) -> Iterator[None]:
    """The run folder's training lock around a whole ``train`` command, evaluation included (rank 0
    under torchrun; :mod:`flowmaps.train.lock`)."""
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:
        acquire_run_lock(out)
    try:
        yield
    finally:
        if main_rank:
            release_run_lock(out)


def _train(args: argparse.Namespace, setup: pipeline.Setup, out: Path) -> int:
    trainer = pipeline.start_training(setup, out, resume=args.resume)
    main_rank = trainer.dist.is_main
    if main_rank and setup.choices is not None:
        print("flowmaps: settings chosen for this data, device and budget (override any with --set KEY=VALUE):\n"
              + format_choices(setup.choices, setup.overridden), file=sys.stderr)
        if getattr(trainer.source, "columns", None) is not None:
            print("flowmaps: the table's columns, fitted to its training rows (override with --set data.columns=NAME:TYPE,...):\n"
                  + "\n".join(f"  {line}" for line in trainer.source.columns.summary()), file=sys.stderr)
    if main_rank:
        cfg = trainer.cfg
        length = f"{cfg.train.minutes:g} minutes, steps measured" if cfg.train.minutes is not None else f"{cfg.train.steps} steps"
        print(f"flowmaps: training {cfg.method} on {cfg.data.name} into {out} ({length}, batch {cfg.train.batch_size}, "
              f"{cfg.train.precision}, device {trainer.device}, {trainer.dist.world_size} process(es))", file=sys.stderr)
    trainer.fit()
    if main_rank and trainer.budget is not None:
        print(f"flowmaps: {budget_summary(trainer.budget)}; the step count is saved in config.yaml", file=sys.stderr)
    if main_rank and not args.no_eval:
        try:
            done = pipeline.finish(trainer)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while evaluating; training is complete in {out} (its checkpoints are whole): "
                              f"evaluate it with: flowmaps eval --run {out}", signal.SIGINT) from None
        _announce(done.ema, done.selection)
        if done.audit is not None:
            verdicts = ", ".join(f"{f.name.split(' (')[0]} {f.verdict}" for f in done.audit.figures["1"])
            print(f"flowmaps: audit at N = 1 against {done.audit.counts['held-out']:,} held-out items: {verdicts} (audit.json)")
        print(format_table(done.result))
        print(f"\nwrote {', '.join(str(p) for p in done.written)}")
        print(f"report: {done.report.resolve()}")  # type: ignore[union-attr]
    shutdown(trainer.dist)
    return 0


def _picture_run_out(args: argparse.Namespace, what: str) -> Path:
    """--out, else runs/<folder>-<what>-<time> for a run on the picture folder --data."""
    return Path(args.out) if args.out else Path("runs") / f"{Path(args.data.rstrip('/')).stem or 'pictures'}-{what}-{time.strftime('%Y%m%d-%H%M%S')}"


def _code_pictures(args: argparse.Namespace, out: Path) -> None:
    """``train --code patch``: write the pictures' code into the run folder ``out`` and turn
    ``args`` into the array run on it (:mod:`flowmaps.picture_codes`)."""
    folder = RunFolder(out)
    if folder.is_run():
        raise FileExistsError(f"{out} already holds a run; choose another --out")
    resolution = next((int(o.split("=", 1)[1]) for o in args.overrides if o.startswith("data.resolution=")), None)
    code_pictures(args.data, folder, resolution, patch=args.code_patch, kind=args.code_kind, scaling=args.code_scaling)
    args.data = str((folder.code / "codes.npy").resolve())
    args.out = str(out)
    args.overrides = code_overrides(folder) + [o for o in args.overrides if not o.startswith("data.resolution=")]  # the user's --set win


def _train_anomaly(args: argparse.Namespace) -> int:
    """``train --task anomaly``: the feature-space anomaly model of :mod:`flowmaps.feature_anomaly`."""
    if not args.data:
        raise UsageError("--task anomaly needs --data FOLDER: a folder of normal pictures")
    if args.resume or args.overrides:
        raise UsageError("--task anomaly takes --data, --minutes, --out and nothing else (no --resume, no --set)")
    if Path(args.data).suffix.lower() in (".csv", ".tsv", ".parquet", ".npy", ".safetensors"):
        raise UsageError(f"--task anomaly scores pictures: give a folder of them, not {args.data!r}; for a table, train "
                         "as usual and use 'flowmaps score --kind denoise'")
    out = _picture_run_out(args, "anomaly")
    with _training_lock(out):
        model = train_anomaly(args.data, out, args.minutes)
    print(f"flowmaps: anomaly model in {model.folder.path}; score pictures with: flowmaps score --run {model.folder.path} "
          "--input FOLDER --out scores.csv")
    return 0


def _announce(name: str, selection: Any) -> None:
    """Say which weights are evaluated and, when they were picked, against which others."""
    if selection is None:
        return
    scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(selection.scores.items(), key=lambda kv: kv[1])[:4])
    print(f"flowmaps: evaluating with EMA {name} (best of {len(selection.scores)} on {selection.metric} at "
          f"N = {', '.join(map(str, selection.steps))}: {scores})", file=sys.stderr)


def cmd_sample(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in pipeline.SAMPLE_SUFFIXES:
        raise UsageError(f"--out {args.out!r}: use a .npy, .png or (points) .csv file name")
    if not out.parent.exists():
        raise UsageError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
    run = load_run(args.run, ema=args.ema)
    drawn = pipeline.draw_samples(run, args.steps, args.num, args.seed, args.noise, args.solver, args.classes, args.guidance,
                                  args.where)
    pipeline.save_samples(run, drawn, out, args.steps, args.solver)
    print(f"wrote {drawn.x.shape[0]} samples ({drawn.what}) to {out}")
    return 0


def cmd_impute(args: argparse.Namespace) -> int:
    filled, rows = pipeline.impute_table(args.run, args.input, Path(args.out), args.steps, args.draws, args.seed, args.ema)
    print(f"filled {filled:,} empty cells in {rows:,} rows ({args.draws} draw(s) of {args.steps} call(s) each) -> {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    solvers = [s.strip() for s in args.solver.split(",") if s.strip()] if args.solver else None
    done = pipeline.evaluate_saved(args.run, EvalOptions(args.steps, args.metric, solvers), args.ema, args.num,
                                   args.overrides)
    if done.data_missing:
        print(f"flowmaps: the training data is not available ({done.data_missing}); metrics that need it are skipped",
              file=sys.stderr)
    _announce(done.run.ema, done.selection)
    print(format_table(done.result))
    print(f"\nwrote {done.run.folder.evaluation}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    done = pipeline.audit_saved(args.run, args.steps, args.num, args.heldout, args.ema, args.seed, args.target)
    audit = done.audit
    print(f"audit of {done.run.path} (EMA {done.run.ema}) in {audit.features}; " +
          ", ".join(f"{v:,} {k}" for k, v in audit.counts.items()))
    for note in audit.notes:
        print(f"note: {note}")
    print(audit.table())
    print(f"\nwrote {', '.join(map(str, done.written))}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.out and not Path(args.out).parent.exists():
        raise UsageError(f"--out {args.out!r}: folder {str(Path(args.out).parent)!r} does not exist")
    path = write_report(args.run, args.out)
    print(f"wrote {path.resolve()}")
    return 0


def cmd_ema(args: argparse.Namespace) -> int:
    """Write RUN/ema/sigma_rel=X.safetensors for each X; 'sample --ema sigma_rel=X' then uses it."""
    for sr, info, path in pipeline.export_emas(args.run, args.sigma_rel, args.step):
        print(f"sigma_rel {sr}: step {info['step']}, {len(info['coefficients'])} snapshot averages "
              f"from {info['snapshots']} snapshots -> {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    if args.run:
        return _run_info(Path(args.run))
    if args.preset:
        cfg = build_config(preset(args.preset))
        print(f"# preset {args.preset}: {PRESETS[args.preset][0]}")
        print(dump_yaml(cfg), end="")
        print(f"# network parameters: {pipeline.parameter_count(cfg):,}")
        return 0
    print("presets:")
    for name, (desc, _) in PRESETS.items():
        print(f"  {name:12s} {desc}")
    print("\nmethods:")
    for name, spec in METHODS.items():
        print(f"  {name:12s} {spec.summary}")
    return 0


def _run_info(run: Path) -> int:
    """``info --run``: the run's progress, its training lock, and every checkpoint, verified."""
    folder = RunFolder(run)
    if not folder.is_run():
        raise RunError(f"{str(run)!r} is not a flowmaps run folder (no config.yaml / run.json)")
    cfg = folder.read_config()
    ckpts = list_checkpoints(folder.checkpoints)
    print(f"run {run}: {cfg.method} on {cfg.data.name}, {cfg.train.steps:,} steps planned")
    compiled = folder.read_meta().get("compile")
    print(f"train.compile: {cfg.train.compile}" + (f" (auto: {compiled['why']})" if compiled else ""))
    print(f"training lock: {lock_status(run)}")
    print(f"checkpoints in {folder.checkpoints} (newest first; train.keep_ckpts={cfg.train.keep_ckpts}):" if ckpts else
          "checkpoints: none yet")
    resume_from = None
    for ckpt in reversed(ckpts):
        why = verify_checkpoint(ckpt)
        size = sum(f.stat().st_size for f in ckpt.iterdir() if f.is_file())
        print(f"  {ckpt.name}  {size / 1e6:9,.1f} MB  {'intact' if why is None else 'DAMAGED: ' + why}")
        if why is None and resume_from is None:
            resume_from = ckpt.name
    snaps = list_snapshots(folder.ema_snapshots)
    print(f"EMA snapshots: {len(snaps)}" + (f" (steps {snaps[0][0]:,} to {snaps[-1][0]:,})" if snaps else ""))
    if ckpts:
        print(f"--resume, sample and eval use: {resume_from or 'none (every checkpoint is damaged)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "info": cmd_info, "report": cmd_report,
                "ema": cmd_ema, "audit": cmd_audit, "impute": cmd_impute, **HANDLERS}
    try:
        code = handlers[args.command](args)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: see exit_now
            exit_now(code)
        return code
    except Interrupted as e:
        print(f"flowmaps: {e}", file=sys.stderr)
        return 128 + e.signum
    except TrainingDiverged as e:
        print(f"flowmaps: training diverged: {e}", file=sys.stderr)
        return 3
    except (FlowmapsError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as e:
        # a user's error (flowmaps.errors), or a path the user gave that is not there or is in the
        # way; anything else is a bug and keeps its traceback
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"flowmaps: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:
        if not is_no_space(e):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"flowmaps: error: no space left on the disk{where}; free some space and run the command again "
              "(a run's checkpoints are whole: 'flowmaps info --run RUN')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowmaps: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
