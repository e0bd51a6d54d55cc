"""The commands that take a user's inputs: edit, encode, decode, score (see :mod:`flowmaps.cli`).

    flowmaps edit   --run DIR --input X (--strength T | --noise-level S [--mean] | --mask M [--strength T])
                    --steps N --out Y.npy|Y.png|FOLDER [--seed S] [--class C [--guidance A]]
    flowmaps encode --run DIR --input X --steps N --out codes.npy
    flowmaps decode --run DIR --input codes.npy --steps N --out Y [--interpolate K]
    flowmaps score  --run DIR --input X --out scores.csv [--kind denoise|restore|code]
                    [--strengths 0.1,0.2,0.3] [--draws 4] [--steps 1] [--seed S]
    flowmaps score  --run ANOMALY_RUN --input FOLDER --out scores.csv   (train --task anomaly runs:
                    + scores-heatmaps.png; the kind and strengths are the run's own)

Each is thin: the work is in :mod:`flowmaps.edit`, :mod:`flowmaps.encode` and
:mod:`flowmaps.anomaly`; inputs and outputs in :mod:`flowmaps.inputs`. Bad input raises
:class:`flowmaps.inputs.InputError` (one line, exit status 2).
"""
from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .anomaly import ScoreSettings, anomaly_scores
from .edit import check_linear, denoise, edit, inpaint, posterior_mean, start_time
from .encode import check_invertible, decode, encode, slerp
from .errors import InputError
from .feature_anomaly import NORMAL_FOLDERS, AnomalyModel, folder_truth, heatmap_figure, read_pictures, score_summary
from .inputs import read_inputs, save_csv, save_image_folder, save_npy, write_csv
from .kinds import data_kind
from .metrics.outliers import BASELINES, LOCAL_BASELINES
from .run import load_run
from .run_folder import RunFolder
from .sampling import apply_batched
from .train.trainer import pick_device


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.3,0.5, got {text!r}") from None


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--input", required=True, help="a .npy [N, *shape] in the data's scale (as 'sample' writes), a .csv "
                                                   "of points, or an image file / folder (image runs)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--ema", help="weights, as for sample (default: the run's chosen weights)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1 ...")
    p.add_argument("--class", dest="label", type=int, help="class-conditional runs: the class to use (default: the "
                                                          "unconditional model, the null label)")
    p.add_argument("--guidance", type=float, help="guidance scale with --class (guided maps)")


def add_parsers(sub: Any) -> None:
    """Register edit, encode, decode and score on the ``flowmaps`` sub-command parser."""
    out_edit = "Y.npy (results), Y.png (inputs over results, up to 16 of each) or a folder (one PNG per image)"
    e = sub.add_parser("edit", help="restore or edit inputs: noise them to time 1 - strength and map them back to data")
    _common(e, out_edit)
    e.add_argument("--steps", type=int, required=True, help="network calls N")
    e.add_argument("--strength", type=float, help="in (0, 1]: how far towards noise the input goes (1: a fresh sample)")
    e.add_argument("--noise-level", type=float, help="the input carries Gaussian noise of this std (data scale): "
                                                     "denoise it from its own noise, no fresh noise added")
    e.add_argument("--mean", action="store_true", help="with --noise-level: the one-call posterior mean (best PSNR, "
                                                       "blurrier) instead of the map")
    e.add_argument("--mask", help="inpainting: a .npy or image, 1/white where the input is known (shape of one input "
                                  "or of all); --strength defaults to 1")
    e.add_argument("--scheme", default="jump", choices=["jump", "replace"], help="inpainting: jump to data and re-noise "
                                                                               "at each step, or replace the known part")
    e.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("encode", help="data -> codes (standard normal) with a map trained on the full square")
    _common(c, "codes.npy")
    c.add_argument("--steps", type=int, required=True)

    d = sub.add_parser("decode", help="codes -> data with a map trained on the full square")
    _common(d, out_edit)
    d.add_argument("--steps", type=int, required=True)
    d.add_argument("--interpolate", type=int, metavar="K", help="decode K points along the spherical path between the "
                                                                "first two codes instead")

    s = sub.add_parser("score", help="anomaly scores: one per input, larger = less like the training data")
    _common(s, "scores.csv (name, score)")
    s.add_argument("--kind", default="denoise", choices=["restore", "denoise", "code"],
                   help="denoise: the one-call posterior mean's error (default); restore: through the map; code: "
                        "the code's Gaussian density (full-square runs)")
    s.add_argument("--strengths", type=_float_list, default=[0.1, 0.2, 0.3])
    s.add_argument("--draws", type=int, default=4)
    s.add_argument("--steps", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)


# -- shared plumbing --------------------------------------------------------------------------------

def _check_out(out: Path, suffixes: tuple[str, ...], folder: bool = False) -> None:
    if out.suffix not in suffixes and not (folder and out.suffix == ""):
        allowed = ", ".join(suffixes) + (" or a folder" if folder else "")
        raise InputError(f"--out {str(out)!r}: use {allowed}")
    if not out.parent.exists():
        raise InputError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")


def _load(args: argparse.Namespace, codes: bool = False) -> tuple[Any, Tensor, list[str], Tensor | None]:
    """(run, inputs, names, labels or None) with every check made before any work; inputs in the
    model's scale (array data normalised), or as given for ``codes``."""
    if getattr(args, "steps", 1) < 1 or args.batch_size < 1:
        raise InputError("--steps and --batch-size must be positive")
    try:
        device = pick_device(args.device)
    except (ValueError, RuntimeError):
        raise InputError(f"--device {args.device!r} is not available here; use auto or cpu") from None
    run = load_run(args.run, ema=args.ema, device=device)
    x, names = read_inputs(args.input, run.shape, table=None if codes else run.columns)
    if not codes:
        x = run.from_data(x)  # array data: the model's per-channel normalised scale
    conditional = run.cfg.data.conditional
    if args.label is not None and not conditional:
        raise InputError("--class needs a class-conditional run (trained with data.conditional=true)")
    if args.guidance is not None and args.label is None:
        raise InputError("--guidance needs --class")
    labels = None
    if conditional:
        label = run.num_classes if args.label is None else args.label
        if not 0 <= label <= run.num_classes:
            raise InputError(f"--class {args.label}: this run has classes 0..{run.num_classes - 1}")
        labels = torch.full((x.shape[0],), label, dtype=torch.long)
    return run, x, names, labels


def _write(x: Tensor, out: Path, run: Any, names: list[str], before: Tensor | None = None) -> None:
    """Results to .npy, .csv (points), a .png (the data kind's picture, inputs over results) or a
    folder of PNGs (images)."""
    x = run.to_data(x)
    before = None if before is None else run.to_data(before)
    if out.suffix == ".npy":
        save_npy(x, out)
    elif out.suffix == ".csv" and len(run.shape) == 1:
        save_csv(x, out, run.column_names, table=run.columns)
    elif out.suffix == ".png":
        kind = data_kind(run.cfg, run.shape)
        k = kind.row_items or x.shape[0]
        kind.draw({"input": before[:k], "result": x[:k]} if before is not None else {"result": x[: 4 * k]}, out)
    elif out.suffix == "" and len(run.shape) == 3:
        out.mkdir(exist_ok=True)
        save_image_folder(x, out, names)
    else:
        raise InputError(f"cannot write data of shape {list(run.shape)} to {str(out)!r}; use a .npy output")


def _read_mask(path: str, x: Tensor) -> Tensor:
    """A mask broadcastable to the inputs x [B, *shape]: 1 where known."""
    p = Path(path)
    if p.suffix == ".npy" and p.is_file():
        m = torch.as_tensor(np.load(p), dtype=torch.float32)
    else:
        m = (read_inputs(p, tuple(x.shape[1:]), "--mask")[0] > 0).float()
    if tuple(m.shape) not in (tuple(x.shape[1:]), tuple(x.shape)) and not (m.ndim == x.ndim and m.shape[0] == 1):
        raise InputError(f"--mask {path!r} has shape {list(m.shape)}; give one input's shape {list(x.shape[1:])} or all of "
                         f"{list(x.shape)}")
    if bool(((m != 0) & (m != 1)).any()):
        raise InputError(f"--mask {path!r}: values must be 0 (generate) or 1 (known)")
    return m


# -- the commands -----------------------------------------------------------------------------------

def cmd_edit(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out, (".npy", ".png", ".csv"), folder=True)
    if args.noise_level is not None and (args.strength is not None or args.mask):
        raise InputError("--noise-level replaces --strength and --mask: give one of them")
    if args.mean and args.noise_level is None:
        raise InputError("--mean needs --noise-level")
    if args.noise_level is None and args.strength is None and not args.mask:
        raise InputError("give --strength T (0 < T <= 1), --noise-level S, or --mask M")
    if args.strength is not None:
        start_time(args.strength)
    run, x, names, labels = _load(args)
    check_linear(run.cfg.interpolant, "flowmaps edit")
    gen = torch.Generator().manual_seed(args.seed)
    aux = None
    if args.noise_level is not None:
        if not args.noise_level > 0:
            raise InputError(f"--noise-level must be positive, got {args.noise_level}")
        fn = partial(posterior_mean, run.fm, noise_std=args.noise_level, sigma=run.sigma) if args.mean else \
            partial(denoise, run.fm, noise_std=args.noise_level, steps=args.steps, sigma=run.sigma)
        what = f"denoised (noise level {args.noise_level:g}, {'posterior mean, 1 call' if args.mean else f'N = {args.steps}'})"
    elif args.mask:
        mask = _read_mask(args.mask, x)
        strength = 1.0 if args.strength is None else args.strength
        aux = mask.expand_as(x) if mask.shape != x.shape else mask

        def fn(xb: Tensor, mb: Tensor, **cond: Any) -> Tensor:
            return inpaint(run.fm, xb, mb, args.steps, run.sigma, strength, gen, args.scheme, **cond)
        what = f"inpainted (strength {strength:g}, N = {args.steps}, {args.scheme})"
    else:
        fn = partial(edit, run.fm, strength=args.strength, steps=args.steps, sigma=run.sigma, generator=gen)
        what = f"edited (strength {args.strength:g}, N = {args.steps})"
    y = apply_batched(run.fm, fn, x, args.batch_size, labels, args.guidance, aux)
    _write(y, out, run, names, before=x)
    print(f"{what}: {x.shape[0]} inputs, EMA {run.ema} -> {out}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out, (".npy",))
    run, x, _, labels = _load(args)
    check_invertible(run.cfg.loss.full_square)
    z = apply_batched(run.fm, partial(encode, run.fm, steps=args.steps, sigma=run.sigma), x, args.batch_size, labels,
                      args.guidance)
    save_npy(z, out)  # codes: standard normal, never rescaled
    print(f"encoded {x.shape[0]} inputs (N = {args.steps}, EMA {run.ema}) -> {out}; code std {float(z.std()):.3f} "
          f"(1 for data like the training set)")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out, (".npy", ".png", ".csv"), folder=True)
    run, z, names, labels = _load(args, codes=True)
    check_invertible(run.cfg.loss.full_square)
    if args.interpolate is not None:
        if args.interpolate < 2 or z.shape[0] < 2:
            raise InputError("--interpolate K needs K >= 2 and at least two codes in --input")
        w = torch.linspace(0, 1, args.interpolate)
        z = torch.cat([slerp(z[:1], z[1:2], float(wi)) for wi in w])
        names = [f"interp_{i:03d}" for i in range(args.interpolate)]
        labels = labels[:1].expand(args.interpolate).clone() if labels is not None else None
    x = apply_batched(run.fm, partial(decode, run.fm, steps=args.steps, sigma=run.sigma), z, args.batch_size, labels,
                      args.guidance)
    _write(x, out, run, names)
    print(f"decoded {x.shape[0]} codes (N = {args.steps}, EMA {run.ema}) -> {out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out, (".csv",))
    if RunFolder(args.run).anomaly.is_file() or RunFolder(args.run).features.is_dir():
        return _score_pictures(args, out)
    settings = ScoreSettings(args.kind, args.strengths, args.draws, args.steps)
    settings.validate()
    run, x, names, labels = _load(args)
    if settings.kind != "code":
        check_linear(run.cfg.interpolant, f"flowmaps score --kind {settings.kind}")
    scores = anomaly_scores(run.fm, x, run.sigma, settings, args.batch_size, args.seed, run.cfg.loss.full_square, labels)
    write_csv(out, ["name", "score"], ([n, f"{s:.6g}"] for n, s in zip(names, scores.tolist())))
    q = np.quantile(scores.numpy(), [0.0, 0.5, 1.0])
    print(f"scored {x.shape[0]} inputs ({args.kind}, {settings.network_calls()} network calls each, EMA {run.ema}): "
          f"min {q[0]:.4g}, median {q[1]:.4g}, max {q[2]:.4g} -> {out}")
    return 0


def _score_pictures(args: argparse.Namespace, out: Path) -> int:
    """``score`` on an anomaly run (``train --task anomaly``): scores.csv, the heat maps of the
    highest-scoring pictures beside it, and each score's AUROC when the input folder says which
    pictures are normal (a subfolder named good, normal or ok beside the others)."""
    model = AnomalyModel(args.run)
    pictures = read_pictures(args.input, size=model.size)
    result = model.score(pictures.images, seed=args.seed)
    columns = ["score", "flagged", "global", "local", *BASELINES, *LOCAL_BASELINES]
    write_csv(out, ["name", *columns], ([n, *(f"{result[c][i]:.6g}" if c != "flagged" else str(int(result[c][i])) for c in columns)]
                                        for i, n in enumerate(pictures.names)))
    heat = out.with_name(out.stem + "-heatmaps.png")
    top = heatmap_figure(pictures, result, heat)
    flagged = int(result["flagged"].sum())
    print(f"scored {len(pictures.names)} pictures: {flagged} flagged (above every held-out normal picture's score "
          f"{model.info['threshold']:.2f}); most anomalous: {', '.join(pictures.names[i] for i in top[:3])} -> {out}, {heat}")
    truth = folder_truth(pictures)
    auc = score_summary(result, truth) if truth is not None else {}
    if "score" in auc:
        best = max([*BASELINES, *LOCAL_BASELINES], key=lambda b: auc.get(b, 0.0))
        print("AUROC by the input's subfolders (normal: " + ", ".join(NORMAL_FOLDERS) + "): "
              + ", ".join(f"{k} {v:.3f}" for k, v in auc.items()))
        verdict = "beats" if auc["score"] > auc.get(best, 0.0) else "does not beat"
        print(f"the flow maps' score {verdict} the best baseline ({best}, {auc.get(best, float('nan')):.3f} on the same features)")
    return 0


HANDLERS = {"edit": cmd_edit, "encode": cmd_encode, "decode": cmd_decode, "score": cmd_score}
