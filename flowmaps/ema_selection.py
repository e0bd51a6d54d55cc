"""Pick the weights to evaluate: the raw weights, every tracked average and post-hoc power-EMA
reconstructions, scored on a quick metric with noise of their own (not the final evaluation's).

The raw weights are always a candidate, so the weights chosen never score worse than them on the
quick metric.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .averages import RAW, power_name
from .config import Config, check_eval_ema
from .data.source import DataSource
from .evaluate import default_solvers, eval_labels, generate
from .flow_map import FlowMap
from .kinds import data_kind
from .metrics.registry import METRICS, Scoring
from .run_folder import RunFolder
from .train.ema import flat_names, unflatten
from .train.snapshots import list_snapshots, reconstruct_emas

RECONSTRUCT_GRID: tuple[float, ...] = (0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25)
"""sigma_rel values reconstructed post hoc as candidates (when the run kept snapshots)."""


@dataclass
class EMASelection:
    """name: the weights chosen; metric: the quick metric's name (lower is better); scores: its
    value for every candidate; steps: the N it averaged over; samples: samples per candidate."""

    name: str
    metric: str
    scores: dict[str, float]
    steps: list[int]
    samples: int
    reconstructed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.name, "metric": self.metric, "steps": self.steps, "samples": self.samples,
                "scores": self.scores, "reconstructed": self.reconstructed}


def ema_candidates(raw: dict[str, Tensor], ema_flat: dict[str, Tensor], run_dir: Path | None) -> tuple[dict[str, dict[str, Tensor]], list[str]]:
    """{name: state dict} of the raw weights, each tracked average, and power EMAs reconstructed
    on :data:`RECONSTRUCT_GRID` from the run's snapshots; and the reconstructed names."""
    out: dict[str, dict[str, Tensor]] = {RAW: raw}
    for name in flat_names(ema_flat):
        out[name] = unflatten(ema_flat, name)
    rebuilt: list[str] = []
    snap_dir = RunFolder(run_dir).ema_snapshots if run_dir is not None else None
    if snap_dir is not None and list_snapshots(snap_dir):
        wanted = [sr for sr in RECONSTRUCT_GRID if power_name(sr) not in out]
        for sr, (state, _) in zip(wanted, reconstruct_emas(snap_dir, wanted)):
            out[power_name(sr)] = {**raw, **state}
            rebuilt.append(power_name(sr))
    return out, rebuilt


def select_ema(fm: FlowMap, candidates: dict[str, dict[str, Tensor]], cfg: Config, source: DataSource | None,
               sigma: float, shape: tuple[int, ...], reconstructed: list[str] | None = None) -> EMASelection:
    """Score every candidate's samples on the data kind's quick metric
    (:meth:`flowmaps.kinds.DataKind.quick_metric`), the mean over its quick step counts (N = 1
    and 4 for points, N = 1 for images: a network call on images costs far more); the lowest wins."""
    kind = data_kind(cfg, shape, getattr(source, "normalization", None))
    name, n = kind.quick_metric()
    metric = METRICS[name]
    if source is None and metric.name != "map_mse":
        return EMASelection(RAW if RAW in candidates else next(iter(candidates)), metric.name, {}, [], 0, [])
    steps = list(kind.quick_steps)
    g = torch.Generator().manual_seed(cfg.eval.seed + 1)
    noise = sigma * torch.randn(n, *shape, generator=g)
    labels = eval_labels(fm, n)
    exact_fn = kind.exact_map(sigma) if labels is None else None
    if metric.name == "map_mse" and exact_fn is None:
        metric = METRICS["sliced_w2"]  # a class-conditional model has no single exact map to compare with
    exact = exact_fn(noise).float() if metric.name == "map_mse" and exact_fn is not None else None
    reference = kind.quick_reference(source, n, cfg.seed + 3) if metric.needs_reference else None
    scoring = Scoring(cfg, source, reference, exact, labels)
    solver = default_solvers(cfg)[0]
    probe = copy.deepcopy(fm).eval().requires_grad_(False)
    scores: dict[str, float] = {}
    for cand, state in candidates.items():
        probe.load_state_dict(state)
        vals = [metric.score(generate(probe, noise, k, solver, cfg.eval.batch_size, labels), scoring).values[metric.name]
                for k in steps]
        scores[cand] = float(sum(vals) / len(vals))
    finite = {k: v for k, v in scores.items() if v == v}
    best = min(finite, key=finite.__getitem__) if finite else RAW
    return EMASelection(best, metric.name, scores, steps, n, list(reconstructed or []))


def choose_weights(fm: FlowMap, ema_flat: dict[str, Tensor], cfg: Config, source: DataSource | None, sigma: float,
                   shape: tuple[int, ...], run_dir: Path) -> tuple[str, EMASelection | None]:
    """The weights named by ``cfg.eval.ema``, or for ``auto`` the best candidate; the choice is
    recorded in the run's run.json (``ema_selected``) so that sampling uses it by default."""
    spec = check_eval_ema(cfg, cfg.eval.ema, "eval.ema")
    selection = None
    if spec == "auto":
        candidates, rebuilt = ema_candidates(fm.state_dict(), ema_flat, run_dir)
        selection = select_ema(fm, candidates, cfg, source, sigma, shape, rebuilt)
        spec = selection.name
        folder = RunFolder(run_dir)
        if folder.meta.is_file():
            folder.update_meta(ema_selected=spec, ema_selection=selection.as_dict())
    return spec, selection
