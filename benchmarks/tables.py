"""A company's own table, as a new user trains on it (issue 21): ``flowmaps train --data
train.csv --minutes M``, then ``flowmaps audit`` against rows the run never saw.

Three tables, each split once (seeded) into a training CSV with a header and a held-out CSV:

- ``breast_cancer``: scikit-learn's breast-cancer table, 569 rows, 30 columns with scales from
  0.003 to 570, all non-negative; 400 rows to train on, 169 held out (the issue's case);
- ``wine``: scikit-learn's wine table, 178 rows, 13 columns; 120 to train on, 58 held out;
- ``synthetic``: 750 rows made here with known structure: height (cm) and weight (kg), correlated
  reals; a binary smoker flag that depends on height; income, log-normal (skewed, non-negative,
  scale 1e4); visits, a Poisson count whose rate depends on the flag; a ratio in [0, 0.001]
  (a tiny non-negative scale); 500 to train on, 250 held out.

For each table and seed: the run (every choice automatic; seeds other than 0 add ``--set
seed=K``), then :func:`flowmaps.audit.audit_run` at N = 1 and 4 against the held-out CSV. Beside
it, on the same rows: training rows against held-out rows (what real data score), and a
full-covariance Gaussian and a 5-component Gaussian mixture fitted to the whole training CSV in
the raw values (the issue's baselines), each scored by the same two-sample test. A gradient-boosted
tree splits on quantiles, so the test's AUC does not depend on a monotone rescaling of a column.

    python benchmarks/tables.py --minutes 2 --seeds 0 1 2
    python benchmarks/tables.py --minutes 2 --columns real   # every column plainly standardised (no log, clip or rounding)
    python benchmarks/tables.py --sweep 75 150 300 600 1200 --seeds 0   # fixed step counts, raw weights, no evaluation

``--peers`` is the side-by-side of tables as they come (text, empty cells) with SDV and
Forest-Flow (issue 29; :mod:`table_peers` says what it measures), run from ``.venv-peers``
(``bash benchmarks/setup_table_peers.sh``):

    .venv-peers/bin/python benchmarks/tables.py --peers --minutes 2 --seeds 0 1 2 --impute

``--sweep`` is how ``train.max_steps`` (one step per training row, at least 150) was chosen:
each table at fixed step counts (``--set train.steps=S --no-eval``, the raw weights audited).
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cli_runs import train_via_cli

from flowmaps.audit import C2ST_REPEATS, MAX_AUDIT_ITEMS, audit_run, two_sample_auc
from flowmaps.run import load_run


def _split(x: np.ndarray, n_train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    p = np.random.default_rng(seed).permutation(len(x))
    return x[p[:n_train]], x[p[n_train:]]


def synthetic(n: int = 750, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """The table with known structure (see the module doc)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    height = 170 + 10 * z
    weight = 70 + 0.8 * (height - 170) + 8 * rng.standard_normal(n)
    smoker = (rng.random(n) < 0.3 + 0.3 * (z > 0)).astype(float)
    income = np.exp(10 + 0.3 * z + 0.6 * rng.standard_normal(n))
    visits = rng.poisson(np.exp(0.8 + 0.6 * smoker)).astype(float)
    ratio = 0.001 * rng.beta(2, 5, n)
    return np.stack([height, weight, smoker, income, visits, ratio], 1), ["height_cm", "weight_kg", "smoker", "income",
                                                                           "visits", "ratio"]


def tables() -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    from sklearn.datasets import load_breast_cancer, load_wine

    out = {}
    for name, loader, n_train in (("breast_cancer", load_breast_cancer, 400), ("wine", load_wine, 120)):
        d = loader()
        out[name] = (*_split(d.data, n_train), [f.replace(" ", "_").replace("/", "_") for f in d.feature_names])
    x, names = synthetic()
    out["synthetic"] = (x[:500], x[500:], names)
    return out


def write_csv(path: Path, x: np.ndarray, names: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows([[f"{v:.6g}" for v in row] for row in x])


def c2st(a: np.ndarray, held: np.ndarray, seed: int = 0) -> float:
    """The audit's two-sample AUC: mean over draws of len(held) rows of ``a``."""
    rng = np.random.default_rng(seed)
    return float(np.mean([two_sample_auc(a[rng.permutation(len(a))[:len(held)]], held, seed + r) for r in range(C2ST_REPEATS)]))


def raw_baselines(train: np.ndarray, held: np.ndarray, n: int = 2000) -> dict[str, dict[str, float]]:
    """Two-sample AUC and the share of negative entries in non-negative columns of a Gaussian and a
    5-component mixture fitted to the raw training rows, and of the training rows themselves."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    nonneg = (train >= 0).all(0)
    draws = {"gaussian (raw values)": rng.multivariate_normal(train.mean(0), np.cov(train, rowvar=False), size=n),
             "mixture of 5 (raw values)": GaussianMixture(5, covariance_type="full", reg_covar=1e-6, random_state=0)
             .fit(train).sample(n)[0][rng.permutation(n)],
             "training rows": train}
    return {k: {"auc": c2st(x, held), "negative": float((x[:, nonneg] < 0).mean())} for k, x in draws.items()}


def run_one(work: Path, name: str, seed: int, minutes: float, train: np.ndarray, held: np.ndarray,
            names: list[str], columns: str | None = None, steps: int | None = None) -> dict[str, float]:
    out = work / (f"{name}-seed{seed}" + (f"-steps{steps}" if steps else ""))
    t = time.perf_counter()
    args = ["--data", str(work / f"{name}_train.csv")]
    args += ["--set", f"train.steps={steps}", "--no-eval"] if steps else ["--minutes", str(minutes)]
    if columns == "real":
        args += ["--set", "data.columns=" + ",".join(f"{j}:real" for j in range(len(names)))]
    _, meta = train_via_cli(out, *args, *(["--set", f"seed={seed}"] if seed else []))
    wall = time.perf_counter() - t
    run = load_run(out)
    audit = audit_run(run, [1, 4], MAX_AUDIT_ITEMS, torch.as_tensor(held, dtype=torch.float32))
    row: dict[str, float] = {"steps": steps or meta["budget"]["steps"], "wall_s": wall}
    for n, figures in audit.figures.items():
        for f in figures:
            row[f"{f.name.split(' (')[0]} N={n}"] = f.value
            row[f"verdict {f.name.split(' (')[0]} N={n}"] = f.verdict  # type: ignore[assignment]
    for k, v in audit.figures["1"][0].references.items():  # real data and the audit's own baselines
        row[f"fidelity reference {k}"] = v
    noise = run.sigma * torch.randn(MAX_AUDIT_ITEMS, *run.shape, generator=torch.Generator().manual_seed(1))
    from flowmaps.evaluate import generate

    nonneg = (train >= 0).all(0)
    for n in (1, 4):
        x = run.to_data(generate(run.fm, noise, n, "map", 1000)).numpy()
        row[f"negative N={n}"] = float((x[:, nonneg] < 0).mean())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tables", nargs="+", default=["breast_cancer", "wine", "synthetic"])
    ap.add_argument("--columns", choices=["real"], help="real: every column plainly standardised (the comparison "
                                                       "for the column types)")
    ap.add_argument("--sweep", type=int, nargs="+", help="fixed step counts instead of --minutes (raw weights)")
    ap.add_argument("--out", help="JSON of the results (default results/tables_cpu[_real|_sweep|_peers].json)")
    ap.add_argument("--peers", action="store_true", help="tables as they come beside SDV and Forest-Flow (table_peers.py)")
    ap.add_argument("--impute", action="store_true", help="with --peers: also score imputation")
    ap.add_argument("--peer-seeds", type=int, nargs="+", help="with --peers: run CTGAN, TVAE and Forest-Flow (two minutes "
                                                               "each) at these seeds only (default: every seed)")
    ap.add_argument("--only", nargs="+", help="with --peers: these systems only (flowmaps, gaussian_copula, ctgan, tvae, "
                                              "forest_flow)")
    args = ap.parse_args()
    if args.peers:
        from table_peers import TABLES, run_peers

        tables = [t for t in args.tables if t in TABLES or t == "titanic"] if args.tables != ap.get_default("tables") \
            else list(TABLES)
        run_peers(tables, args.seeds, args.minutes, Path(args.out or Path(__file__).parent / "results" / "tables_cpu_peers.json"),
                  args.impute, args.only, args.peer_seeds)
        return
    kind = "_real" if args.columns else "_sweep" if args.sweep else ""
    out_path = Path(args.out or Path(__file__).parent / "results" / f"tables_cpu{kind}.json")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (train, held, names) in tables().items():
            if name not in args.tables:
                continue
            write_csv(work / f"{name}_train.csv", train, names)
            runs = [run_one(work, name, s, args.minutes, train, held, names, args.columns, n)
                    for s in args.seeds for n in (args.sweep or [None])]
            results[name] = {"rows": [len(train), len(held)], "columns": len(names), "runs": runs,
                             "baselines": raw_baselines(train, held)}
            print(json.dumps({name: results[name]}, indent=1), flush=True)
    results["provenance"] = {"command": f"python benchmarks/tables.py --minutes {args.minutes:g} --seeds "
                             f"{' '.join(map(str, args.seeds))}" + (f" --columns {args.columns}" if args.columns else "") +
                             (f" --sweep {' '.join(map(str, args.sweep))}" if args.sweep else ""),
                             "machine": platform.processor() or platform.machine(),
                             "threads": torch.get_num_threads(), "torch": torch.__version__}
    out_path.write_text(json.dumps(results, indent=1))
    if args.sweep:
        print("\n| table | training rows | steps | fidelity N = 1 / 4 | memorisation N = 1 / 4 |")
        print("|---|---|---|---|---|")
        for name, r in results.items():
            if name != "provenance":
                for run in r["runs"]:
                    print(f"| {name} | {round(0.8 * r['rows'][0])} | {run['steps']} | {run['fidelity N=1']:.3f} / "
                          f"{run['fidelity N=4']:.3f} | {run['memorisation N=1']:.2f} / {run['memorisation N=4']:.2f} |")
        return
    keys = ["fidelity", "coverage", "precision", "memorisation", "near copies", "out of training range", "negative"]
    print("\n| table | figure | N = 1 (mean, min-max over seeds) | N = 4 |")
    print("|---|---|---|---|")
    for name, r in results.items():
        if name == "provenance":
            continue
        for k in keys:
            cells = []
            for n in (1, 4):
                v = np.array([run[f"{k} N={n}"] for run in r["runs"]])
                cells.append(f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})")
            print(f"| {name} | {k} | {cells[0]} | {cells[1]} |")
        refs = sorted({k for run in r["runs"] for k in run if k.startswith("fidelity reference ")})
        for k in refs:
            v = np.array([run[k] for run in r["runs"]])
            print(f"| {name} | audit's {k[len('fidelity reference '):]} (written out like the samples) | AUC "
                  f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f}) | |")
        for b, v in r["baselines"].items():
            print(f"| {name} | baseline: {b} | AUC {v['auc']:.3f}, negative {v['negative']:.3f} | |")


if __name__ == "__main__":
    main()
