"""Evaluate a trained run at several step counts: sample, score, plot, record provenance.

The same noise is used for every N and solver, so rows differ only by the sampler. Which metrics
and pictures a run gets is its data kind's business (:mod:`flowmaps.kinds`); how each metric
scores is the registry's (:mod:`flowmaps.metrics.registry`).
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import Config
from .data.source import DataSource
from .errors import ConfigError, MetricUnavailable
from .flow_map import FlowMap
from .guidance import class_count
from .kinds import data_kind
from .metrics.registry import Scoring, metric_for
from .run import Run
from .sampling import ODE_SOLVERS, sample
from .train.checkpoint import write_text_atomic

SOLVERS = ("map", "euler", "heun", "rk4")


def default_solvers(cfg: Config) -> list[str]:
    """A flow-matching run is sampled with ODE solvers, every other method with its map."""
    return ["euler", "heun"] if cfg.method == "fm" else ["map"]


@dataclass
class EvalOptions:
    """What an evaluation computes: ``steps`` (None: ``eval.steps``), ``metrics`` (None:
    ``eval.metrics``; ``["auto"]``: the data kind's), ``solvers`` (None: the method's), the
    pictures' ``tag`` (``samples-<tag>.png``) and ``quick`` (at most 8,000 samples, for periodic
    evaluation during training)."""

    steps: list[int] | None = None
    metrics: list[str] | None = None
    solvers: list[str] | None = None
    tag: str = "final"
    quick: bool = False


@torch.no_grad()
def generate(fm: FlowMap, noise: Tensor, steps: int, solver: str, batch_size: int, labels: Tensor | None = None,
             guidance: float | None = None) -> Tensor:
    """Samples from ``noise`` [n, ...] (already scaled by sigma) in batches, on the model's device;
    a class-conditional model takes ``labels`` [n] and a ``guidance`` scale (see :func:`sample`)."""
    device = next(fm.parameters()).device
    outs = []
    for i in range(0, noise.shape[0], batch_size):
        y = labels[i : i + batch_size].to(device) if labels is not None else None
        outs.append(sample(fm, noise[i : i + batch_size].to(device), steps, solver, y, guidance).float().cpu())  # type: ignore[arg-type]
    return torch.cat(outs)


def eval_labels(fm: FlowMap, n: int) -> Tensor | None:
    """Balanced class labels [n] (sample i asks for class i mod K) for a class-conditional flow
    map, None for an unconditional one."""
    k = class_count(fm)
    return torch.arange(n) % k if k else None


def guidance_scales(cfg: Config, fm: FlowMap) -> list[float | None]:
    """The scales evaluated: None (the plain conditional model) then ``eval.guidance``, for a
    class-conditional model; [None] otherwise."""
    if not class_count(fm):
        return [None]
    return [None] + [float(g) for g in cfg.eval.guidance if float(g) != 1.0]


def row_name(solver: str, guidance: float | None) -> str:
    """The results-table key of a solver at a guidance scale: ``map``, ``map, guidance 2``."""
    return solver if guidance is None else f"{solver}, guidance {guidance:g}"


def evaluate_run(run: Run, source: DataSource | None, options: EvalOptions | None = None) -> dict[str, Any]:
    """Score samples of ``run`` (its flow map, with the weights it carries) for each solver and N
    against its training data ``source`` (None: unavailable, metrics that need it fail or are
    skipped); write ``samples-<tag>*.png`` into the run folder; return the results dict
    (``metrics``: row -> N -> values; ``provenance``; ``reference``: the perfect sampler's row;
    ``skipped_metrics``; a class-conditional run's per-class accuracy and guidance choice)."""
    o = options or EvalOptions()
    cfg, shape = run.cfg, run.shape
    steps = o.steps or list(cfg.eval.steps)
    solvers = o.solvers or default_solvers(cfg)
    for s in solvers:
        if s not in SOLVERS:
            raise ConfigError(f"unknown solver {s!r}; choose from {', '.join(SOLVERS)}")
    kind = data_kind(cfg, shape, getattr(source, "normalization", None) or run.normalization)
    requested = list(cfg.eval.metrics) if o.metrics is None else list(o.metrics)
    if requested == ["auto"]:
        requested = kind.default_metrics()
    metrics = [metric_for(m, kind.tags, cfg.data.name) for m in requested]
    n = min(cfg.eval.num_samples, 8000) if o.quick else cfg.eval.num_samples
    noise = run.sigma * torch.randn(n, *shape, generator=torch.Generator().manual_seed(cfg.eval.seed))
    labels = eval_labels(run.fm, n)
    exact = kind.exact_map(run.sigma) if labels is None and any(m.name == "map_mse" for m in metrics) else None
    reference = kind.reference(source, n)
    scoring = Scoring(cfg, source, reference, exact(noise) if exact is not None else None, labels,
                      (lambda k: kind.scored(source.reference(k, cfg.seed + 11))) if source is not None else None,
                      kind.decoder_view(source))

    skipped: dict[str, str] = {}
    facts: dict[str, Any] = {}
    table: dict[str, dict[str, dict[str, float]]] = {}
    per_class: dict[str, dict[str, list[float]]] = {}
    pictures: dict[str, dict[int, Tensor]] = {}
    for solver in solvers:
        for guidance in guidance_scales(cfg, run.fm):
            key = row_name(solver, guidance)
            table[key], pictures[key] = {}, {}
            for steps_n in steps:
                x = kind.scored(generate(run.fm, noise, steps_n, solver, cfg.eval.batch_size, labels, guidance))
                row: dict[str, float] = {}
                for m in metrics:
                    if m.name in skipped:
                        continue
                    try:
                        score = m.score(x, scoring)
                    except MetricUnavailable as e:
                        skipped[m.name] = str(e)
                        continue
                    row.update(score.values)
                    facts.update(score.provenance)
                    if score.details is not None:  # class_accuracy's per-class accuracies
                        per_class.setdefault(key, {})[str(steps_n)] = score.details
                calls = ODE_SOLVERS.get(solver, 1) * (2 if guidance is not None and solver != "map" else 1)
                row["nfe"] = float(steps_n * calls)
                table[key][str(steps_n)] = row
                pictures[key][steps_n] = x[: kind.plotted]
    run.path.mkdir(parents=True, exist_ok=True)
    kind.save_grids(pictures, run.folder, o.tag, reference)
    provenance = {
        **facts,
        "num_samples": n, "noise_seed": cfg.eval.seed, "sigma": run.sigma, "data": cfg.data.name,
        "method": cfg.method, "machine": platform.machine(), "torch": torch.__version__,
        "step": run.step, "ema": run.ema, "devices": run.devices, "seed": cfg.seed,
    }
    result: dict[str, Any] = {"metrics": table, "provenance": provenance}
    if per_class:
        result["class_accuracy_per_class"] = per_class
        result["guidance_choice"] = choose_guidance(table)
    floor = {m.name: v for m in metrics if m.floor is not None and m.name not in skipped
             and (v := m.floor(scoring, n)) is not None}
    if floor:
        result["reference"] = {"perfect sampler (exact data)": floor}
    if skipped:
        result["skipped_metrics"] = skipped
    return result


def choose_guidance(table: dict[str, dict[str, dict[str, float]]], target: float = 0.95) -> dict[str, Any]:
    """The guidance scale evaluation recommends, from the rows with ``class_accuracy`` at the
    smallest N: the best ``fd_classifier`` (or, without it, the highest accuracy) among the scales
    whose accuracy reaches ``target``; the most accurate scale when none does."""
    rows = {k: per_n[min(per_n, key=int)] for k, per_n in table.items() if per_n and "class_accuracy" in next(iter(per_n.values()))}
    if not rows:
        return {}
    good = {k: r for k, r in rows.items() if r["class_accuracy"] >= target}
    pool = good or rows
    if good and all("fd_classifier" in r for r in good.values()):
        best = min(good, key=lambda k: good[k]["fd_classifier"])
    else:
        best = max(pool, key=lambda k: pool[k]["class_accuracy"])
    n = min(next(iter(table.values())), key=int)
    return {"chosen": best, "at_steps": int(n), "class_accuracy": rows[best]["class_accuracy"], "target": target,
            "reached": bool(good)}


def format_table(result: dict[str, Any]) -> str:
    """A markdown table: one row per (solver, N)."""
    table = result["metrics"]
    names: list[str] = []
    for per_n in table.values():
        for row in per_n.values():
            names += [k for k in row if k not in names and k != "nfe"]
    lines = ["| solver | N | NFE | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for solver, per_n in table.items():
        for n, row in per_n.items():
            vals = " | ".join(f"{row[k]:.4f}" if k in row else "" for k in names)
            lines.append(f"| {solver} | {n} | {int(row['nfe'])} | {vals} |")
    for label, row in result.get("reference", {}).items():
        vals = " | ".join(f"{row[k]:.4f}" if k in row else "" for k in names)
        lines.append(f"| {label} | | | {vals} |")
    for metric, why in result.get("skipped_metrics", {}).items():
        lines.append(f"\nskipped {metric}: {why}")
    choice = result.get("guidance_choice")
    if choice:
        lines.append(f"\nguidance: {choice['chosen']} (class accuracy {choice['class_accuracy']:.3f} at N = {choice['at_steps']}"
                     f"{'' if choice['reached'] else ', below the target ' + format(choice['target'], '.2f')})")
    return "\n".join(lines)


def write_eval(result: dict[str, Any], path: str | Path) -> None:
    """eval.json, written atomically (a reader never sees half a file)."""
    write_text_atomic(Path(path), json.dumps(result, indent=2))
