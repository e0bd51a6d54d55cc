"""A table as it comes, end to end: train on text categories, dates and empty cells, sample the
same columns back, fill empty cells (impute), draw rows given some columns (--where), audit it,
and the same through the Python API (flowmaps.TableModel)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from flowmaps import TableModel
from flowmaps.cli import main
from flowmaps.metrics.tabular import column_shapes, ks_complement, ml_utility, pair_trends, tv_complement
from tests.data.test_table_kinds import mixed_rows, write_csv

FAST = ["--set", "train.steps=30", "--set", "train.batch_size=128", "--set", "net.width=32", "--set", "eval.num_samples=200"]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table")
    names, rows = mixed_rows(n=150)
    data = write_csv(tmp / "t.csv", names, rows)
    run = tmp / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--no-eval", *FAST]) == 0
    return run, data, names, rows


def test_a_table_with_text_dates_and_empty_cells_trains_and_samples_its_own_columns(table_run, tmp_path, capsys):
    run, _, names, rows = table_run
    meta = json.loads((run / "run.json").read_text())
    assert [c["type"] for c in meta["columns"]["columns"]][:6] == ["identifier", "category", "positive", "datetime",
                                                                  "boolean", "category"]
    out = tmp_path / "s.csv"
    assert main(["sample", "--run", str(run), "--steps", "1", "--num", "400", "--out", str(out)]) == 0
    s = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(s.columns) == names and len(s) == 400
    assert set(s["grade"]) <= {"A", "B", "C"} and set(s["member"]) <= {"yes", "no"}
    assert set(s["state"]) <= {r[5] for r in rows} and set(s["region"]) == {"EU"} and set(s["blank"]) == {""}
    assert s["customer"].is_unique and not set(s["customer"]) & {r[0] for r in rows}
    assert pd.to_datetime(s["joined"], format="%Y-%m-%d").notna().all()
    filled = s["income"][s["income"] != ""].astype(float)
    assert (filled >= 0).all() and (s["income"] == "").any()  # empty cells come back as empty cells


def test_impute_fills_only_the_empty_cells(table_run, tmp_path, capsys):
    run, data, names, rows = table_run
    holes = [r.copy() for r in rows[:40]]
    for i, r in enumerate(holes):
        r[1 + i % 4] = ""  # grade, income, joined or member
    src = write_csv(tmp_path / "holes.csv", names, holes)
    out = tmp_path / "filled.csv"
    assert main(["impute", "--run", str(run), "--input", str(src), "--out", str(out), "--draws", "3"]) == 0
    modelled = {1, 2, 3, 4, 5, 7}
    empty = sum(r[j] == "" for r in holes for j in modelled)
    assert empty > 40 and f"filled {empty} empty cells in 40 rows" in capsys.readouterr().out
    got = [line.split(",") for line in out.read_text().splitlines()[1:]]
    for r, g in zip(holes, got):
        for j, (given, written) in enumerate(zip(r, g)):
            if j in modelled and given == "":
                assert written != "", names[j]
            else:
                assert written == given, names[j]  # every known cell, and every column not modelled, untouched
    assert {g[1] for g, i in zip(got, range(40)) if i % 4 == 0} <= {"A", "B", "C"}


def test_where_draws_rows_holding_the_given_values_and_refuses_unseen_ones(table_run, tmp_path, capsys):
    run, *_ = table_run
    out = tmp_path / "w.csv"
    assert main(["sample", "--run", str(run), "--steps", "2", "--num", "30", "--where", "grade=B,member=yes",
                 "--out", str(out)]) == 0
    s = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(s["grade"]) == {"B"} and set(s["member"]) == {"yes"} and len(s) == 30
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--steps", "1", "--where", "grade=Q", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["flowmaps: error: --where: column 'grade' has 'Q' on the command line, a level never seen in training "
                   "(the levels are 'A', 'B', 'C')"]
    assert main(["sample", "--run", str(run), "--steps", "1", "--where", "colour=B", "--out", str(out)]) == 2
    assert "--where: no column 'colour'" in capsys.readouterr().err


def test_the_audit_speaks_the_fields_language(table_run, capsys):
    run, *_ = table_run
    assert main(["audit", "--run", str(run), "--steps", "1", "--num", "200", "--target", "grade"]) == 0
    figures = {f["name"]: f for f in json.loads((run / "audit.json").read_text())["figures"]["1"]}
    assert {"column shapes (KS / TV complement)", "column pair trends", "ML utility (accuracy predicting grade)"} <= set(figures)
    assert any(k.startswith("empty cells (largest share gap") for k in figures)
    assert all(0 <= figures[k]["value"] <= 1 for k in ("column shapes (KS / TV complement)", "column pair trends"))
    assert main(["audit", "--run", str(run), "--target", "note"]) == 2
    assert "--target 'note': not a modelled column" in capsys.readouterr().err


def test_the_python_api_fits_a_dataframe_and_returns_dataframes(tmp_path):
    import palmerpenguins

    df = palmerpenguins.load_penguins()
    model = TableModel.fit(df, minutes=None, out=tmp_path / "m", settings={"train.steps": 40, "eval.num_samples": 200})
    rows = model.sample(300, seed=1)
    assert list(rows.columns) == list(df.columns) and len(rows) == 300
    assert set(rows["species"]) <= set(df["species"]) and str(rows["year"].dtype) == "int64"
    adelie = model.sample(20, where={"species": "Adelie"})
    assert set(adelie["species"]) == {"Adelie"}
    gaps = df.head(30).copy()
    gaps.loc[gaps.index[:10], "body_mass_g"] = np.nan
    filled = model.impute(gaps, draws=2)
    assert filled["body_mass_g"].notna().all() and filled["sex"].notna().all()
    pd.testing.assert_frame_equal(filled.iloc[10:, :6], gaps.iloc[10:, :6], check_dtype=False)
    copy = model.save(tmp_path / "copy")
    again = TableModel.load(copy.path)
    pd.testing.assert_frame_equal(again.sample(50, seed=3), model.sample(50, seed=3))
    audit = again.audit(target="species")
    assert "ML utility (accuracy predicting species)" in [f.name for f in audit.figures["1"]]


def test_sdmetrics_scores_on_known_sets():
    a = np.arange(100.0)
    assert ks_complement(a, a) == 1.0 and ks_complement(a, a + 1000) == 0.0
    assert abs(ks_complement(a, a[:50]) - 0.5) < 1e-12
    assert tv_complement(np.array([0, 0, 1, 1.0]), np.array([0, 1, 1, 1.0])) == 0.75
    x = np.random.default_rng(0).normal(size=(500, 2))
    y = np.c_[x[:, 0], x[:, 0] + 0.1 * x[:, 1]]
    cols = [type("C", (), {"name": n, "type": "real", "modelled": True, "coded": False})() for n in "ab"]
    assert pair_trends(y, y, cols) == {"a / b": 1.0}
    assert pair_trends(y, x, cols)["a / b"] < 0.6  # correlation ~1 against ~0
    assert min(column_shapes(y, y, cols).values()) == 1.0
    cat = [type("C", (), {"name": "k", "type": "category", "modelled": True, "coded": True, "levels": ["0", "1"]})(), cols[0]]
    z = np.c_[(x[:, 0] > 0).astype(float), x[:, 0]]
    u = ml_utility(z[:400], z[:400], z[400:], cat, "k")
    assert u["metric"] == "accuracy" and u["real"] > 0.95 and u["synthetic"] == u["real"]
    shuffled = np.c_[z[:400, 0], np.random.default_rng(1).permutation(z[:400, 1])]
    assert ml_utility(z[:400], shuffled, z[400:], cat, "k")["synthetic"] < 0.75


def test_inputs_to_a_table_run_are_read_by_column_name(table_run, tmp_path):
    from flowmaps.inputs import read_inputs
    from flowmaps.run import load_run

    run_dir, data, names, rows = table_run
    run = load_run(run_dir)
    reordered = write_csv(tmp_path / "r.csv", names[::-1], [r[::-1] for r in rows[:5]])
    x, _ = read_inputs(reordered, run.shape, table=run.columns)
    y, _ = read_inputs(data, run.shape, table=run.columns)
    assert torch.allclose(x, y[:5], equal_nan=True)


@pytest.mark.parametrize("text, extra, match", [
    ("a,a,b\n1,2,x\n3,4,y\n", [], "the header names column 'a' twice; give every column its own name"),
    ("a,b\n1,x\n", [], "has 1 data row; a table to learn from needs at least 2"),
    ("a,b\n1,x\n2,y,3\n", [], "line 3 has 3 cells, the header has 2; every row needs one cell per column"),
    (None, ["--set", "data.columns=code:category"], "column 'code' has 2,400 distinct values, too many for a category"),
])
def test_bad_tables_stop_in_one_line_and_write_nothing(tmp_path, capsys, text, extra, match):
    path = tmp_path / "t.csv"
    if text is None:
        text = "code,x\n" + "".join(f"k{i},{i % 7}\n" for i in range(3000))
    path.write_text(text)
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--out", str(out), "--set", "train.steps=2", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not out.exists()
