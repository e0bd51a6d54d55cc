"""How many map calls a draw imputation needs (issue 29): per table, one ``flowmaps train --data
train.csv --minutes 2`` run (the split of ``table_peers.py``), then 20% of the known cells of the
held-out rows hidden three times (seeds 0, 1, 2) and filled with ``--calls`` map calls a draw (8
draws), beside scikit-learn's IterativeImputer and KNNImputer; RMSE (numbers, standardised by
the training rows' std) and accuracy (categories), means over the three hidings.

    .venv-peers/bin/python benchmarks/impute_steps.py --tables penguins cps1985 --calls 4 16
    .venv-peers/bin/python benchmarks/impute_steps.py --tables penguins --calls 1 4 8 16 32 64
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import table_peers as tp

from flowmaps.cli import main as cli
from flowmaps.data.columns import detect_columns
from flowmaps.data.tables import frame_table, read_table
from flowmaps.impute import impute
from flowmaps.run import load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="+", default=["penguins", "cps1985"])
    ap.add_argument("--calls", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--draws", type=int, default=8)
    args = ap.parse_args()
    for name in args.tables:
        train, held = tp.split(tp.load(name))
        with tempfile.TemporaryDirectory() as tmp:
            train_csv = Path(tmp) / "train.csv"
            train.to_csv(train_csv, index=False)
            table = detect_columns(read_table(train_csv))
            out = Path(tmp) / "run"
            cli(["train", "--data", str(train_csv), "--minutes", "2", "--out", str(out), "--no-eval",
                 "--set", "train.progress=false"])
            run = load_run(out)
            res: dict[str, list[dict[str, float]]] = {}
            for seed in (0, 1, 2):
                holes, mask = tp.hide_cells(held, table, seed)
                truth = table.parse(frame_table(held), strict=False).numpy()
                hv = table.parse(frame_table(holes), strict=False).numpy()
                tv = table.parse(frame_table(train), strict=False).numpy()
                mask &= ~np.isnan(truth)
                for kind in ("iterative", "knn"):
                    res.setdefault(kind, []).append(tp.impute_scores(table, tp.sklearn_impute(kind, table, tv, hv), truth, mask, tv))
                for calls in args.calls:
                    t = time.perf_counter()
                    f = impute(run, run.columns.parse(frame_table(holes), strict=False), calls, args.draws, seed).numpy()
                    r = tp.impute_scores(table, f, truth, mask, tv)
                    r["seconds"] = time.perf_counter() - t
                    res.setdefault(f"flowmaps {calls} calls x {args.draws} draws", []).append(r)
        print(name, json.dumps({k: {m: round(float(np.mean([x[m] for x in v])), 3) for m in v[0]} for k, v in res.items()}),
              flush=True)


if __name__ == "__main__":
    main()
