"""The ``flowmaps`` command: train, sample, eval, report, ema, info, and edit, encode, decode, score.

    flowmaps train (--data PATH | --preset NAME | --config FILE) [--minutes M] [--out DIR] [--set key=value ...] [--resume]
    flowmaps sample --run DIR --steps N [--num M] [--seed S] [--noise FILE.npy] [--solver map|euler|heun]
                    [--ema DECAY] [--class 3 | 0,1,2 | all] [--guidance ALPHA] --out FILE.npy|FILE.png
    flowmaps eval --run DIR [--steps 1,2,4,8,16] [--metric NAME ...] [--solver map,euler,heun]
    flowmaps report --run DIR [--out FILE.html]
    flowmaps ema --run DIR --sigma-rel 0.05 [0.1 ...] [--step K]
    flowmaps edit | encode | decode | score --run DIR --input X ...   (see flowmaps.cli_inputs)
    flowmaps info [--preset NAME]

A user's error (:mod:`flowmaps.errors`, or a path that does not exist) prints one line and exits
with status 2, a diverged run with 3; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FlowmapsError, InputError, TrainingDiverged, UsageError
from .run_folder import RunFolder


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
    s.add_argument("--out", required=True, help="FILE.npy (samples) or FILE.png (a plot or image grid)")

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

    r = sub.add_parser("report", help="write a self-contained HTML report of a run")
    r.add_argument("--run", required=True)
    r.add_argument("--out", help="HTML file (default RUN/report.html)")

    m = sub.add_parser("ema", help="post-hoc EMA: build the weights of any power EMA from a run's snapshots")
    m.add_argument("--run", required=True)
    m.add_argument("--sigma-rel", type=float, nargs="+", required=True, help="relative standard deviations, e.g. 0.05 0.1")
    m.add_argument("--step", type=int, help="the step to reconstruct at (default: the last snapshot's)")

    from .cli_inputs import add_parsers

    add_parsers(sub)
    i = sub.add_parser("info", help="list presets and methods, or show one preset")
    i.add_argument("--preset")
    return ap


def _default_out(args: argparse.Namespace, method: str) -> Path:
    if args.data:  # one command per data set and budget: a new folder each time
        import time

        stem = Path(args.data.rstrip("/")).stem or "data"
        return Path("runs") / f"{stem}-{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    else:
        stem = args.preset or (Path(args.config).stem if args.config else "run")
    return Path("runs") / f"{stem}-{method}"


def cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config, load_yaml, parse_overrides, preset

    layers: list[dict[str, Any]] = []
    overrides = parse_overrides(args.overrides)
    choices = None
    if args.minutes is not None and not args.minutes > 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes}")
    if args.data:
        from .autoconfig import as_layer, auto_config

        if args.resume:
            raise UsageError("--resume continues a run from its saved config: pass --out DIR without --data")
        train_over = overrides.get("train", {})
        # a budget's image recipe is timed here unless the run has a step count or its own network or
        # batch, or runs in several processes (each would time its own and they could disagree)
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        by_steps = "steps" in train_over and args.minutes is None
        timed = not by_steps and "net" not in overrides and "batch_size" not in train_over and processes == 1
        step_timer = None
        if timed:
            from .step_timing import step_seconds as step_timer
        choices = auto_config(args.data, args.minutes, device=str(train_over.get("device", "auto")),
                              processes=processes, resolution=overrides.get("data", {}).get("resolution"),
                              step_timer=step_timer)
        if by_steps:
            choices = [c for c in choices if c.key != "train.minutes"]
        layers.append(as_layer(choices))
    elif args.resume and not args.preset and not args.config:
        if not args.out:
            raise UsageError("--resume needs --out: the run folder to continue")
        cfg_file = RunFolder(args.out).config
        if not cfg_file.is_file():
            raise UsageError(f"--resume: {cfg_file} does not exist; is {args.out} a run folder?")
        layers.append(load_yaml(cfg_file))
    elif args.preset:
        layers.append(preset(args.preset))
    elif args.config:
        layers.append(load_yaml(args.config))
    else:
        raise UsageError("train needs --data PATH, --preset NAME or --config FILE (see 'flowmaps info')")
    if args.minutes is not None and not args.data:
        layers.append({"train": {"minutes": args.minutes}})
    layers.append(overrides)
    cfg = build_config(*layers)
    out = Path(args.out) if args.out else _default_out(args, cfg.method)

    from .train.trainer import Trainer

    trainer = Trainer(cfg, out, resume=args.resume)
    if trainer.dist.is_main and choices is not None:
        from .autoconfig import format_choices

        overridden = {".".join(k) for k in _flat_keys(overrides)}
        print("flowmaps: settings chosen for this data, device and budget (override any with --set KEY=VALUE):\n"
              + format_choices(choices, overridden), file=sys.stderr)
        from .train.checkpoint import write_text_atomic

        write_text_atomic(RunFolder(out).autoconfig, json.dumps(
            [{"key": c.key, "value": c.value, "why": c.why} for c in choices], indent=2))
    if trainer.dist.is_main:
        length = (f"{cfg.train.minutes:g} minutes, steps measured" if cfg.train.minutes is not None
                  else f"{trainer.cfg.train.steps} steps")
        print(f"flowmaps: training {cfg.method} on {cfg.data.name} into {out} "
              f"({length}, batch {cfg.train.batch_size}, {cfg.train.precision}, device {trainer.device}, "
              f"{trainer.dist.world_size} process(es))", file=sys.stderr)
    trainer.fit()
    if trainer.dist.is_main and trainer.budget is not None:
        b = trainer.budget
        cap = ", capped by train.max_steps" if "capped_by_max_steps" in b else ""
        moved = (f", re-planned {len(b['replans'])} time(s) from {b['planned_steps']} as the speed moved"
                 if b.get("replans") else "")
        print(f"flowmaps: {b['minutes']:g}-minute budget -> {b['steps']} steps "
              f"({b['measured_step_seconds'] * 1000:.1f} ms a step, measured{cap}{moved}; saved in config.yaml); "
              f"probe and training took {b['seconds']:.0f} s, {100 * b['used']:.0f}% of the budget", file=sys.stderr)
    if trainer.dist.is_main and not args.no_eval:
        finish_run(trainer, out)
    from .train.distributed import shutdown

    shutdown(trainer.dist)
    return 0


def _flat_keys(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in tree.items():
        out += _flat_keys(v, prefix + (k,)) if isinstance(v, dict) else [prefix + (k,)]
    return out


def _announce(name: str, selection: Any) -> None:
    """Say which weights are evaluated and, when they were picked, against which others."""
    if selection is None:
        return
    scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(selection.scores.items(), key=lambda kv: kv[1])[:4])
    print(f"flowmaps: evaluating with EMA {name} (best of {len(selection.scores)} on {selection.metric} at "
          f"N = {', '.join(map(str, selection.steps))}: {scores})", file=sys.stderr)


def finish_run(trainer: Any, out: Path) -> dict[str, Any]:
    """After training: choose the weights, evaluate, plot, write eval.json and the report."""
    from .ema_selection import choose_weights
    from .evaluate import evaluate_flow_map, format_table, write_eval
    from .plots import plot_training

    cfg = trainer.cfg
    name, selection = choose_weights(trainer.fm, trainer.ema.flat(), cfg, trainer.source, trainer.sigma,
                                     trainer.source.shape, out)
    _announce(name, selection)
    fm = trainer.ema_flow_map(name)
    result = evaluate_flow_map(fm, cfg, trainer.source, trainer.sigma, out,
                               extra_provenance=_prov(cfg, trainer.step, name, trainer.dist.world_size))
    if selection is not None:
        result["ema_selection"] = selection.as_dict()
    audit = _audit_after_training(trainer, fm, name, out)
    if audit is not None:
        result["audit"] = audit
    folder = RunFolder(out)
    write_eval(result, folder.evaluation)
    if folder.metrics.is_file():
        plot_training(folder.read_jsonl(folder.metrics), folder.training_plot)
    print(format_table(result))
    from .report import write_report

    report = write_report(out)
    written = [folder.evaluation, *folder.sample_grids("final"), folder.training_plot]
    print(f"\nwrote {', '.join(str(p) for p in written if p.is_file())}")
    print(f"report: {report.resolve()}")
    return result


def _audit_after_training(trainer: Any, fm: Any, ema: str, out: Path) -> dict[str, Any] | None:
    """The audit of a finished run (:func:`flowmaps.audit.audited_after_training` says which):
    written to audit.json (and the marginals of points), returned for eval.json."""
    from .audit import MAX_AUDIT_ITEMS, audit_run, audited_after_training, write_audit
    from .run import Run

    cfg, source = trainer.cfg, trainer.source
    if not audited_after_training(cfg, source):
        return None
    run = Run(out, cfg, fm, trainer.sigma, tuple(source.shape), source.num_classes, trainer.step, ema,
              getattr(source, "normalization", None), getattr(source, "columns", None))
    steps = sorted({1, *([4] if 4 in cfg.eval.steps else [])})
    folder = RunFolder(out)
    audit = audit_run(run, steps, min(cfg.eval.num_samples, MAX_AUDIT_ITEMS), seed=cfg.eval.seed,
                      marginals=folder.audit_marginals if len(source.shape) == 1 else None)
    write_audit(audit, folder.audit)
    verdicts = ", ".join(f"{f.name.split(' (')[0]} {f.verdict}" for f in audit.figures["1"])
    print(f"flowmaps: audit at N = 1 against {audit.counts['held-out']:,} held-out items: {verdicts} (audit.json)")
    return audit.as_dict()


def _prov(cfg: Any, step: int, ema: str, devices: int) -> dict[str, Any]:
    return {"step": step, "ema": ema, "devices": devices, "seed": cfg.seed}


def _parse_classes(text: str | None, num_classes: int) -> list[int]:
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


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .evaluate import generate
    from .inputs import save_array_png, save_csv, save_npy, save_png_grid
    from .run import load_run

    if args.steps < 1 or args.num < 1:
        raise UsageError("--steps and --num must be positive")
    out = Path(args.out)
    if out.suffix not in (".npy", ".png", ".csv"):
        raise UsageError(f"--out {args.out!r}: use a .npy, .png or (points) .csv file name")
    if not out.parent.exists():
        raise UsageError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
    run = load_run(args.run, ema=args.ema)
    classes = _parse_classes(args.classes, run.num_classes if run.cfg.data.conditional else 0)
    if args.guidance is not None and not classes:
        raise UsageError("--guidance needs --class (a class-conditional run)")
    if run.cfg.data.conditional and not classes:
        raise UsageError(f"this run is class-conditional: pass --class (0..{run.num_classes - 1}, comma-separated, or all)")
    if args.noise:
        p = Path(args.noise)
        if not p.is_file():
            raise UsageError(f"--noise {args.noise!r} does not exist")
        z = torch.from_numpy(np.load(p)).float()
        if tuple(z.shape[1:]) != run.shape or z.ndim != len(run.shape) + 1:
            raise UsageError(f"--noise has shape {list(z.shape)}; this run needs [num, {', '.join(map(str, run.shape))}]")
    else:
        z = torch.randn(args.num, *run.shape, generator=torch.Generator().manual_seed(args.seed))
    labels = None
    if classes:  # the same noise for every class
        labels = torch.tensor(classes).repeat_interleave(z.shape[0])
        z = z.repeat(len(classes), *([1] * len(run.shape)))
    try:
        x = generate(run.fm, run.sigma * z, args.steps, args.solver, run.cfg.eval.batch_size, labels, args.guidance)
    except ValueError as e:
        raise UsageError(str(e)) from None
    x = run.to_data(x)  # array data and tables: back to the input's scale
    what = f"{args.solver}, N = {args.steps}, EMA {run.ema}"
    if classes:
        what += f", classes {','.join(map(str, classes))}, guidance {1.0 if args.guidance is None else args.guidance:g}"
    if out.suffix == ".npy":
        save_npy(x, out)
    elif out.suffix == ".csv":
        if len(run.shape) != 1:
            raise UsageError(f"--out {args.out!r}: a .csv holds points [N, D]; this run's items have shape {list(run.shape)}, use .npy")
        save_csv(x, out, run.column_names, labels)
    elif run.cfg.data.name == "array":
        rows = {f"class {c}": part for c, part in zip(classes, x.chunk(len(classes)))} if classes else None
        try:
            save_array_png(x, out, run.cfg, run.shape, rows=rows)
        except InputError as e:
            raise UsageError(str(e)) from None
    elif len(run.shape) == 1 and run.shape[0] == 2:
        from .plots import plot_2d_grid

        rows = {f"class {c}": {args.steps: part} for c, part in zip(classes, x.chunk(len(classes)))} if classes else \
            {f"{run.cfg.method} ({args.solver})": {args.steps: x}}
        plot_2d_grid(rows, out, lim=1.2 if run.cfg.data.name == "checker" else None)
    elif len(run.shape) == 3:
        save_png_grid(x, out, z.shape[0] // len(classes) if classes else int(np.ceil(np.sqrt(x.shape[0]))))
    else:
        raise UsageError(f"cannot draw {len(run.shape)}-d data of shape {list(run.shape)} as a PNG; use a .npy output")
    print(f"wrote {x.shape[0]} samples ({what}) to {out}")
    return 0


EVAL_DATA_KEYS = frozenset({"data.path", "data.cache", "data.decoder"})
"""The data keys ``flowmaps eval --set`` may change (where the data and its decoder live)."""


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_flow_map, format_table, write_eval
    from .run import load_run
    from .train.builders import build_data

    run = load_run(args.run, ema=None if args.ema == "auto" else args.ema)
    cfg = run.cfg
    if args.overrides:
        from .config import build_config, parse_overrides

        over = parse_overrides(args.overrides)
        fixed = [".".join(k) for k in _flat_keys(over) if k[0] != "eval" and ".".join(k[:2]) not in EVAL_DATA_KEYS]
        if fixed:
            raise UsageError(f"eval --set {fixed[0]}: a trained run's model is fixed; eval changes only eval.* and "
                           f"{', '.join(sorted(EVAL_DATA_KEYS))}")
        cfg = build_config(cfg.to_dict(), over)
    if args.num:
        cfg.eval.num_samples = args.num
    try:
        source = build_data(cfg)
    except FileNotFoundError as e:  # MissingDataError among them
        if len(run.shape) == 1:
            raise
        print(f"flowmaps: the training data is not available ({str(e).splitlines()[0]}); metrics that need it are skipped",
              file=sys.stderr)
        source = None
    selection = None
    if args.ema == "auto":
        from .ema_selection import choose_weights
        from .run import weights_for
        from .train.checkpoint import latest_checkpoint, load_checkpoint

        raw, flat, _ = load_checkpoint(latest_checkpoint(run.folder.checkpoints))  # type: ignore[arg-type]
        run.fm.load_state_dict(raw)
        cfg.eval.ema = "auto"
        run.ema, selection = choose_weights(run.fm, flat, cfg, source, run.sigma, run.shape, run.path)
        run.fm.load_state_dict(weights_for(run.ema, raw, flat, run.path))
        _announce(run.ema, selection)
    solvers = [s.strip() for s in args.solver.split(",") if s.strip()] if args.solver else None
    result = evaluate_flow_map(run.fm, cfg, source, run.sigma, run.path, steps=args.steps, metrics=args.metric,
                               solvers=solvers, shape=run.shape, extra_provenance=_prov(cfg, run.step, run.ema, 1))
    if selection is not None:
        result["ema_selection"] = selection.as_dict()
    write_eval(result, run.folder.evaluation)
    print(format_table(result))
    print(f"\nwrote {run.folder.evaluation}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit_run, write_audit
    from .run import load_run

    if args.num < 2 or any(n < 1 for n in args.steps):
        raise UsageError("--num must be at least 2 and every --steps positive")
    run = load_run(args.run, ema=args.ema)
    heldout = None
    if args.heldout:
        from .inputs import read_inputs

        heldout = read_inputs(args.heldout, run.shape, "--heldout")[0]
    folder = run.folder
    marginals = folder.audit_marginals if len(run.shape) == 1 else None
    audit = audit_run(run, args.steps, args.num, heldout, args.seed, marginals=marginals)
    write_audit(audit, folder.audit)
    written = [folder.audit, *([marginals] if marginals else [])]
    if folder.evaluation.is_file():  # the same section in eval.json and the report
        from .evaluate import write_eval
        from .report import write_report

        result = json.loads(folder.evaluation.read_text())
        result["audit"] = audit.as_dict()
        write_eval(result, folder.evaluation)
        written += [folder.evaluation, write_report(run.path)]
    print(f"audit of {run.path} (EMA {run.ema}) in {audit.features}; " +
          ", ".join(f"{v:,} {k}" for k, v in audit.counts.items()))
    for note in audit.notes:
        print(f"note: {note}")
    print(audit.table())
    print(f"\nwrote {', '.join(map(str, written))}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    if args.out and not Path(args.out).parent.exists():
        raise UsageError(f"--out {args.out!r}: folder {str(Path(args.out).parent)!r} does not exist")
    path = write_report(args.run, args.out)
    print(f"wrote {path.resolve()}")
    return 0


def cmd_ema(args: argparse.Namespace) -> int:
    """Write RUN/ema/sigma_rel=X.safetensors for each X; 'sample --ema sigma_rel=X' then uses it."""
    from safetensors.torch import save_file

    from .run import load_run
    from .train.ema import power_name
    from .train.snapshots import list_snapshots, reconstruct_emas

    run = load_run(args.run, ema="raw")
    snap_dir = run.folder.ema_snapshots
    snaps = list_snapshots(snap_dir)
    if not snaps:
        raise UsageError(f"{args.run!r} has no EMA snapshots; train with train.ema_snapshots > 0 and train.ema_sigma_rel set")
    out_dir = run.folder.posthoc_ema
    out_dir.mkdir(exist_ok=True)
    try:
        rebuilt = reconstruct_emas(snap_dir, args.sigma_rel, args.step)
    except ValueError as e:
        raise UsageError(f"--sigma-rel {' '.join(map(str, args.sigma_rel))}: {e}") from None
    for sr, (state, info) in zip(args.sigma_rel, rebuilt):
        path = out_dir / f"{power_name(sr)}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"step": str(info["step"])})
        tmp.replace(path)
        print(f"sigma_rel {sr}: step {info['step']}, {len(info['coefficients'])} snapshot averages "
              f"from {info['snapshots']} snapshots -> {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .config import PRESETS, build_config, dump_yaml, preset
    from .losses.objective import METHODS

    if args.preset:
        cfg = build_config(preset(args.preset))
        print(f"# preset {args.preset}: {PRESETS[args.preset][0]}")
        print(dump_yaml(cfg), end="")
        print(f"# network parameters: {_param_count(cfg):,}")
        return 0
    print("presets:")
    for name, (desc, _) in PRESETS.items():
        print(f"  {name:12s} {desc}")
    print("\nmethods:")
    for name, spec in METHODS.items():
        print(f"  {name:12s} {spec.summary}")
    return 0


def _param_count(cfg: Any) -> int:
    from .data.images import IMAGE_DATASETS
    from .train.builders import build_flow_map, count_parameters

    shapes = {"cifar10": (3, 32, 32), "celeba64": (3, 64, 64), "afhq64": (3, 64, 64), "digits": (1, 8, 8),
              "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}
    if cfg.data.name in IMAGE_DATASETS:
        shape = shapes.get(cfg.data.name, (3, cfg.data.resolution or 64, cfg.data.resolution or 64))
    else:
        shape = (2,)
    import torch

    with torch.device("meta"):  # shapes only: instant, no memory
        return count_parameters(build_flow_map(cfg, shape, 10, 1.0))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .cli_inputs import HANDLERS

    handlers = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "info": cmd_info, "report": cmd_report,
                "ema": cmd_ema, "audit": cmd_audit, **HANDLERS}
    try:
        code = handlers[args.command](args)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: see exit_now
            from .train.distributed import exit_now

            exit_now(code)
        return code
    except TrainingDiverged as e:
        print(f"flowmaps: training diverged: {e}", file=sys.stderr)
        return 3
    except (FlowmapsError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as e:
        # a user's error (flowmaps.errors), or a path the user gave that is not there or is in the
        # way; anything else is a bug and keeps its traceback
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"flowmaps: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowmaps: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
