"""The ``flowmaps`` command: train, sample, eval, info.

    flowmaps train (--preset NAME | --config FILE) [--out DIR] [--set key=value ...] [--resume]
    flowmaps sample --run DIR --steps N [--num M] [--seed S] [--noise FILE.npy] [--solver map|euler|heun]
                    [--ema DECAY] --out FILE.npy|FILE.png
    flowmaps eval --run DIR [--steps 1,2,4,8,16] [--metric NAME ...] [--solver map,euler,heun]
    flowmaps info [--preset NAME]

Errors print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np


class CLIError(Exception):
    """A usage error reported as one line, exit status 2."""


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

    t = sub.add_parser("train", help="train a flow map from a preset or a YAML config")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a preset name (see 'flowmaps info')")
    src.add_argument("--config", help="a YAML config file")
    t.add_argument("--out", help="run folder (default runs/<preset-or-config>-<method>)")
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
    s.add_argument("--ema", type=float, help="EMA decay of the weights (0: raw weights; default: the run's eval.ema)")
    s.add_argument("--out", required=True, help="FILE.npy (samples) or FILE.png (a plot or image grid)")

    e = sub.add_parser("eval", help="evaluate a trained run at several step counts")
    e.add_argument("--run", required=True)
    e.add_argument("--steps", type=_int_list, help="comma-separated N, default the run's eval.steps")
    e.add_argument("--metric", action="append", help="a metric name (repeatable); default auto")
    e.add_argument("--solver", help="comma-separated: map, euler, heun, rk4 (default: map; euler,heun for method fm)")
    e.add_argument("--ema", type=float)
    e.add_argument("--num", type=int, help="number of samples (default the run's eval.num_samples)")

    i = sub.add_parser("info", help="list presets and methods, or show one preset")
    i.add_argument("--preset")
    return ap


def _default_out(args: argparse.Namespace, method: str) -> Path:
    stem = args.preset or (Path(args.config).stem if args.config else "run")
    return Path("runs") / f"{stem}-{method}"


def cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config, load_yaml, parse_overrides, preset

    layers: list[dict[str, Any]] = []
    overrides = parse_overrides(args.overrides)
    if args.resume and not args.preset and not args.config:
        if not args.out:
            raise CLIError("--resume needs --out: the run folder to continue")
        cfg_file = Path(args.out) / "config.yaml"
        if not cfg_file.is_file():
            raise CLIError(f"--resume: {cfg_file} does not exist; is {args.out} a run folder?")
        layers.append(load_yaml(cfg_file))
    elif args.preset:
        layers.append(preset(args.preset))
    elif args.config:
        layers.append(load_yaml(args.config))
    else:
        raise CLIError("train needs --preset NAME or --config FILE (see 'flowmaps info')")
    layers.append(overrides)
    cfg = build_config(*layers)
    out = Path(args.out) if args.out else _default_out(args, cfg.method)

    from .train.trainer import Trainer

    trainer = Trainer(cfg, out, resume=args.resume)
    if trainer.dist.is_main:
        print(f"flowmaps: training {cfg.method} on {cfg.data.name} into {out} "
              f"({trainer.cfg.train.steps} steps, batch {cfg.train.batch_size}, device {trainer.device}, "
              f"{trainer.dist.world_size} process(es))", file=sys.stderr)
    trainer.fit()
    if trainer.dist.is_main and not args.no_eval:
        from .evaluate import evaluate_flow_map, format_table, write_eval
        from .plots import plot_training

        fm = trainer.ema_flow_map(cfg.eval.ema)
        result = evaluate_flow_map(fm, cfg, trainer.source, trainer.sigma, out, extra_provenance=_prov(cfg, trainer.step, cfg.eval.ema, trainer.dist.world_size))
        write_eval(result, out / "eval.json")
        metrics_file = out / "metrics.jsonl"
        if metrics_file.is_file():
            plot_training([json.loads(line) for line in metrics_file.read_text().splitlines()], out / "training.png")
        print(format_table(result))
        if cfg.data.name == "checker":
            from .metrics import checker_kl_floor

            floor, std = checker_kl_floor(cfg.eval.num_samples)
            print(f"\nperfect-sampler floor of this KL estimator ({cfg.eval.num_samples} exact samples): {floor:.4f} +- {std:.4f}")
        plots = ", ".join(str(p) for p in sorted(out.glob("samples-final*.png")))
        print(f"\nwrote {out / 'eval.json'}, {plots}, {out / 'training.png'}")
    from .train.distributed import shutdown

    shutdown(trainer.dist)
    return 0


def _prov(cfg: Any, step: int, ema: float, devices: int) -> dict[str, Any]:
    return {"step": step, "ema": ema, "devices": devices, "seed": cfg.seed}


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .evaluate import generate
    from .run import load_run

    if args.steps < 1 or args.num < 1:
        raise CLIError("--steps and --num must be positive")
    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise CLIError(f"--out {args.out!r}: use a .npy or .png file name")
    if not out.parent.exists():
        raise CLIError(f"--out {args.out!r}: folder {str(out.parent)!r} does not exist")
    run = load_run(args.run, ema=args.ema)
    if args.noise:
        p = Path(args.noise)
        if not p.is_file():
            raise CLIError(f"--noise {args.noise!r} does not exist")
        z = torch.from_numpy(np.load(p)).float()
        if tuple(z.shape[1:]) != run.shape or z.ndim != len(run.shape) + 1:
            raise CLIError(f"--noise has shape {list(z.shape)}; this run needs [num, {', '.join(map(str, run.shape))}]")
    else:
        z = torch.randn(args.num, *run.shape, generator=torch.Generator().manual_seed(args.seed))
    x = generate(run.fm, run.sigma * z, args.steps, args.solver, run.cfg.eval.batch_size)
    if out.suffix == ".npy":
        tmp = out.with_name(out.name + f".tmp{os.getpid()}.npy")
        np.save(tmp, x.numpy())
        os.replace(tmp, out)
    elif len(run.shape) == 1 and run.shape[0] == 2:
        from .plots import plot_2d_grid

        plot_2d_grid({f"{run.cfg.method} ({args.solver})": {args.steps: x}}, out,
                     lim=1.2 if run.cfg.data.name == "checker" else None)
    elif len(run.shape) == 3:
        from .plots import image_grid
        import matplotlib.pyplot as plt

        grid = image_grid(x, int(np.ceil(np.sqrt(x.shape[0]))))
        scale = max(1, 512 // max(grid.shape[:2]))  # small images are enlarged (nearest) to about 512 px
        grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1).numpy()
        plt.imsave(out, grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray")
    else:
        raise CLIError(f"cannot draw {len(run.shape)}-d data of shape {list(run.shape)} as a PNG; use a .npy output")
    print(f"wrote {x.shape[0]} samples ({args.solver}, N = {args.steps}, EMA {run.ema}) to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_flow_map, format_table, write_eval
    from .run import load_run
    from .train.builders import build_data

    run = load_run(args.run, ema=args.ema)
    cfg = run.cfg
    if args.num:
        cfg.eval.num_samples = args.num
    source = build_data(cfg) if len(run.shape) == 1 or cfg.data.name != "folder" else None
    solvers = [s.strip() for s in args.solver.split(",") if s.strip()] if args.solver else None
    result = evaluate_flow_map(run.fm, cfg, source, run.sigma, run.path, steps=args.steps, metrics=args.metric,
                               solvers=solvers, shape=run.shape, extra_provenance=_prov(cfg, run.step, run.ema, 1))
    write_eval(result, run.path / "eval.json")
    print(format_table(result))
    print(f"\nwrote {run.path / 'eval.json'}")
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
    from .config import ConfigError
    from .data.images import MissingDataError

    handlers = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "info": cmd_info}
    try:
        return handlers[args.command](args)
    except (CLIError, ConfigError, MissingDataError, FileNotFoundError, FileExistsError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"flowmaps: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowmaps: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
