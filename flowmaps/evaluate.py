"""Evaluate a flow map at several step counts: sample, score, plot, record provenance.

The same noise is used for every N and solver, so rows differ only by the sampler.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from .config import Config
from .data.source import DataSource
from .data.toy2d import gaussian_problem, gmm_problem
from .errors import ConfigError, InputError
from .flow_map import FlowMap
from .guidance import class_count
from .metrics import (
    MetricUnavailable,
    array_frechet_distance,
    checker_kl,
    energy_distance,
    map_mse,
    sliced_wasserstein2,
    wasserstein2,
)
from .run_folder import RunFolder
from .sampling import ODE_SOLVERS, sample

SOLVERS = ("map", "euler", "heun", "rk4")


def default_solvers(cfg: Config) -> list[str]:
    """A flow-matching run is sampled with ODE solvers, every other method with its map."""
    return ["euler", "heun"] if cfg.method == "fm" else ["map"]


def auto_metrics(cfg: Config, shape: tuple[int, ...]) -> list[str]:
    name = cfg.data.name
    if name == "checker":
        return ["kl", "sliced_w2"]
    if name in ("gaussian", "gmm") and not cfg.data.conditional:
        return ["map_mse", "w2", "sliced_w2", "energy"]
    if name == "array":
        return list(ARRAY_METRICS)
    if len(shape) == 1:
        return ["w2", "sliced_w2", "energy"]
    if name in ("digits", "mnist", "fashion-mnist"):
        return ["fd_classifier", "class_accuracy"] if cfg.data.conditional else ["fd_classifier"]
    return ["fid"]


def exact_map(cfg: Config, sigma: float) -> Callable[[Tensor], Tensor] | None:
    if cfg.data.name == "gaussian":
        prob: Any = gaussian_problem(sigma)
    elif cfg.data.name == "gmm":
        prob = gmm_problem(sigma)
    else:
        return None
    prob.sigma = sigma

    def exact(x0: Tensor) -> Tensor:
        x = x0.double()
        z, o = torch.zeros(x.shape[0], dtype=torch.float64), torch.ones(x.shape[0], dtype=torch.float64)
        if cfg.data.name == "gaussian":
            prob64 = type(prob)(prob.mean.double(), prob.var.double(), sigma)
        else:
            prob64 = type(prob)(prob.weights.double(), prob.means.double(), prob.vars.double(), sigma)
        return prob64.X(x, z, o)

    return exact


ARRAY_METRICS = ("fd_array", "sliced_w2_array")
"""Array data's metrics, on the arrays themselves in their own scale: the Frechet distance of
Gaussian fits (not FID: no feature network) and the sliced W2."""


def score_arrays(metric: str, x: Tensor, reference: Tensor) -> float:
    """An :data:`ARRAY_METRICS` distance between arrays x [n, ...] and reference [m, ...]."""
    return array_frechet_distance(x, reference) if metric == "fd_array" else sliced_wasserstein2(x, reference)


def decoded_view(cfg: Config, source: DataSource | None, shape: tuple[int, ...], metric: str = "fid") -> Any:
    """Array data as images through ``data.decoder``, for ``fid`` / ``kid`` of a latent run
    (:class:`flowmaps.data.arrays.DecodedView`); a one-line error naming ``metric`` without a decoder."""
    from .data.arrays import DecodedView
    from .external import load_decoder
    from .metrics.fid import sha1_of

    if not cfg.data.decoder:
        raise ConfigError(f"metric {metric} on array data needs data.decoder: a TorchScript or torch.export file "
                          "mapping arrays to images in [-1, 1]; or use fd_array / sliced_w2_array")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    decode = load_decoder(cfg.data.decoder, shape, device)
    return DecodedView(source, decode, f"decoder {sha1_of(Path(cfg.data.decoder))}", min(cfg.eval.batch_size, 128))


def score_low_dim(metric: str, x: Tensor, reference: Tensor) -> float:
    """W2, sliced W2 or energy distance of samples x [n, D] to reference points [m, D]."""
    fn = {"w2": wasserstein2, "sliced_w2": sliced_wasserstein2, "energy": energy_distance}[metric]
    return fn(x, reference)


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


def evaluate_flow_map(
    fm: FlowMap,
    cfg: Config,
    source: DataSource | None,
    sigma: float,
    out_dir: str | Path,
    steps: list[int] | None = None,
    metrics: list[str] | None = None,
    solvers: list[str] | None = None,
    tag: str = "final",
    quick: bool = False,
    shape: tuple[int, ...] | None = None,
    extra_provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score samples for each solver and N; write ``samples-<tag>.png``; return the results dict."""
    from .plots import plot_2d_grid, plot_image_rows

    out_dir = Path(out_dir)
    steps = steps or list(cfg.eval.steps)
    solvers = solvers or default_solvers(cfg)
    for s in solvers:
        if s not in SOLVERS:
            raise ConfigError(f"unknown solver {s!r}; choose from {', '.join(SOLVERS)}")
    shape = shape or (source.shape if source is not None else None)
    if shape is None:
        raise ValueError("evaluate_flow_map needs a data source or a shape")
    requested = metrics or list(cfg.eval.metrics)
    if requested == ["auto"]:
        requested = auto_metrics(cfg, shape)
    n = min(cfg.eval.num_samples, 8000) if quick else cfg.eval.num_samples
    g = torch.Generator().manual_seed(cfg.eval.seed)
    noise = sigma * torch.randn(n, *shape, generator=g)
    reference = source.reference(min(n, 100_000), cfg.seed + 1) if source is not None and len(shape) == 1 else None
    norm = getattr(source, "normalization", None)
    if source is not None and norm is not None:  # array data: scored in their own scale
        reference = norm.invert(source.reference(min(n, 20_000), cfg.seed + 1))
    labels = eval_labels(fm, n)
    exact = exact_map(cfg, sigma) if labels is None else None
    exact_x1 = exact(noise) if exact is not None and "map_mse" in requested else None

    skipped: dict[str, str] = {}
    decoded: Any = None
    table: dict[str, dict[str, dict[str, float]]] = {}
    per_class: dict[str, dict[str, list[float]]] = {}
    samples_for_plot: dict[str, dict[int, Tensor]] = {}
    runs = [(solver, g) for solver in solvers for g in guidance_scales(cfg, fm)]
    for solver, guidance in runs:
        key = row_name(solver, guidance)
        table[key] = {}
        samples_for_plot[key] = {}
        for steps_n in steps:
            x = generate(fm, noise, steps_n, solver, cfg.eval.batch_size, labels, guidance)
            if norm is not None:
                x = norm.invert(x)
            row: dict[str, float] = {}
            for m in requested:
                if m == "kl":
                    row["kl"] = checker_kl(x)
                elif m == "map_mse":
                    if exact_x1 is None:
                        raise ConfigError(f"metric map_mse needs data.name gaussian or gmm, not {cfg.data.name}")
                    row["map_mse"] = map_mse(x, exact_x1)
                    # relative to the data's scale: sqrt(E|X - X*|^2 / E|x1 - E x1|^2)
                    row["map_rel_err"] = (row["map_mse"] / float(exact_x1.double().var(0).sum())) ** 0.5
                elif m in ARRAY_METRICS:
                    if norm is None or reference is None:
                        raise ConfigError(f"metric {m} needs array data (data.name=array), not {cfg.data.name}")
                    row[m] = score_arrays(m, x, reference)
                elif m in ("w2", "sliced_w2", "energy"):
                    if reference is None or norm is not None:
                        raise ConfigError(f"metric {m} needs low-dimensional data, not {cfg.data.name}")
                    row[m] = score_low_dim(m, x, reference)
                elif m in skipped:
                    continue
                elif m == "class_accuracy":
                    from .metrics.images import class_accuracy

                    if labels is None:
                        raise ConfigError("metric class_accuracy needs a class-conditional run (data.conditional=true)")
                    row["class_accuracy"], per_class.setdefault(key, {})[str(steps_n)] = class_accuracy(x, labels, cfg, source)
                elif norm is not None:  # array data: image metrics see the samples through data.decoder
                    from .metrics.images import image_metric

                    if decoded is None:
                        decoded = decoded_view(cfg, source, shape, m)
                    try:
                        row.update(image_metric(m, decoded.images(x), cfg, decoded))
                    except MetricUnavailable as e:
                        skipped[m] = str(e)
                else:
                    from .metrics.images import image_metric

                    try:
                        row.update(image_metric(m, x, cfg, source))
                    except MetricUnavailable as e:
                        skipped[m] = str(e)
            calls = ODE_SOLVERS.get(solver, 1) * (2 if guidance is not None and solver != "map" else 1)
            row["nfe"] = float(steps_n * calls)
            table[key][str(steps_n)] = row
            samples_for_plot[key][steps_n] = x[:20000] if len(shape) == 1 else x[:10]
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(out_dir)
    if len(shape) == 1 and shape[0] == 2:
        lim = 1.2 if cfg.data.name == "checker" else float(reference.abs().max()) * 1.1 if reference is not None else None
        plot_2d_grid(samples_for_plot, folder.samples(tag), lim=lim)
    elif norm is not None:
        from .inputs import save_array_png

        for solver, per_n in samples_for_plot.items():
            name = solver.replace(", guidance ", "-guidance")
            try:
                save_array_png(next(iter(per_n.values())), folder.samples(tag, name), cfg, shape,
                               rows={f"N = {k}": v[:6] for k, v in per_n.items()})
            except InputError:  # image-shaped arrays without a decoder: no picture
                pass
    elif len(shape) == 3:
        for solver, per_n in samples_for_plot.items():
            name = solver.replace(", guidance ", "-guidance")
            plot_image_rows({f"N = {k}": v for k, v in per_n.items()}, folder.samples(tag, name))
    image_provenance: dict[str, Any] = {}
    if len(shape) == 3:
        from .metrics.images import PROVENANCE

        image_provenance = dict(PROVENANCE)
    provenance = {
        **image_provenance,
        "num_samples": n, "noise_seed": cfg.eval.seed, "sigma": sigma, "data": cfg.data.name,
        "method": cfg.method, "machine": platform.machine(), "torch": torch.__version__,
        **(extra_provenance or {}),
    }
    result: dict[str, Any] = {"metrics": table, "provenance": provenance}
    if per_class:
        result["class_accuracy_per_class"] = per_class
        result["guidance_choice"] = choose_guidance(table)
    floor = reference_scores(cfg, requested, source, reference, n)
    if floor:
        result["reference"] = floor
    if skipped:
        result["skipped_metrics"] = skipped
    return result


def reference_scores(cfg: Config, metrics: list[str], source: DataSource | None, reference: Tensor | None,
                     n: int) -> dict[str, dict[str, float]]:
    """What a perfect sampler scores on the same estimators: exact data drawn afresh against the
    reference (low-dimensional data; the KL floor for the checkerboard; real images for
    ``fd_classifier``). Inception metrics get no such row (it would cost another FID)."""
    row: dict[str, float] = {}
    if "kl" in metrics:
        from .metrics import checker_kl_floor

        row["kl"] = checker_kl_floor(n, repeats=3)[0]
    norm = getattr(source, "normalization", None)
    if reference is not None and source is not None:
        fresh = source.reference(n, cfg.seed + 11)
        for m in metrics:
            if m in ARRAY_METRICS and norm is not None:
                row[m] = score_arrays(m, norm.invert(fresh), reference)
            elif m in ("w2", "sliced_w2", "energy") and norm is None:
                row[m] = score_low_dim(m, fresh, reference)
    if "fd_classifier" in metrics and source is not None and getattr(source, "num_classes", 0):
        from .metrics.images import image_metric

        # real images (a random half at most) against the whole set
        real = source.reference(min(n, getattr(source, "size", 2 * n) // 2), cfg.seed + 11)
        row["fd_classifier"] = image_metric("fd_classifier", real, cfg, source)["fd_classifier"]
    return {"perfect sampler (exact data)": row} if row else {}


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
    from .train.checkpoint import write_text_atomic

    write_text_atomic(Path(path), json.dumps(result, indent=2))
