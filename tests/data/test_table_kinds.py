"""Tables as they come: text categories, booleans, dates, identifiers, free text and empty cells
are detected, coded for the model and written back cell for cell (flowmaps.data.columns)."""
import numpy as np
import pytest
import torch

from flowmaps.data.columns import ONEHOT_MAX_LEVELS, TableTransform, detect_columns, detect_type
from flowmaps.data.tables import frame_table, read_table
from flowmaps.errors import DataError


def mixed_rows(n=120, seed=0):
    """Rows of a small company table, as text: every kind of column, some cells empty."""
    rng = np.random.default_rng(seed)
    states = [f"S{k:02d}" for k in range(30)]
    rows = []
    for i in range(n):
        grade = ["A", "B", "C"][int(rng.integers(3))]
        income = "" if rng.random() < 0.1 else f"{float(np.exp(rng.normal(10, 0.5))):.2f}"
        day = np.datetime64("2021-01-01") + int(rng.integers(0, 700))
        member = "yes" if rng.random() < 0.4 else "no"
        note = " ".join(rng.choice(["late", "paid", "call", "again", "never", "ok"], 6))
        share = f"{float(rng.beta(5, 2)):.3f}"
        rows.append([f"C{1000 + i:05d}", grade, income, str(day), member, states[i % 30], note, share, "EU", ""])
    return ["customer", "grade", "income", "joined", "member", "state", "note", "paid_share", "region", "blank"], rows


def write_csv(path, names, rows):
    path.write_text("\n".join(",".join(r) for r in [names, *rows]) + "\n")
    return path


def test_each_kind_of_column_is_detected(tmp_path):
    names, rows = mixed_rows()
    raw = read_table(write_csv(tmp_path / "t.csv", names, rows))
    types = [detect_type(c, n) for c, n in zip(raw.columns, raw.names)]
    assert types == ["identifier", "category", "positive", "datetime", "boolean", "category", "text", "share",
                     "constant", "empty"]
    t = detect_columns(raw)
    by = {c.name: c for c in t.columns}
    assert by["grade"].levels == ["A", "B", "C"] and by["grade"].encoding == "onehot" and by["grade"].width == 3
    assert by["member"].levels == ["no", "yes"] and by["member"].width == 1  # a flag: one coordinate
    assert by["income"].missing > 0 and by["income"].width == 2  # a value and its empty-cell indicator
    assert by["joined"].format == "%Y-%m-%d" and by["joined"].step == 86400
    assert [c.width for c in t.columns if not c.modelled] == [0, 0, 0, 0]
    assert "not modelled: customer, note, region, blank" in t.describe()


def test_integers_named_or_dense_like_ids_are_identifiers():
    n = 200
    rows = np.random.default_rng(0).permutation(n).astype(float) + 1
    assert detect_type(rows, "rownames") == "identifier"
    assert detect_type(rows * 1000 + 7, "customer_id") == "identifier"
    assert detect_type(rows * 1000 + 7, "income") == "integer"  # all distinct, but sparse and not named like an id


def test_cells_come_back_as_they_were_written(tmp_path):
    names, rows = mixed_rows()
    raw = read_table(write_csv(tmp_path / "t.csv", names, rows))
    t = detect_columns(raw)
    view = t.parse(raw)
    back = t.rows(t.invert(t.apply(view)))
    for j, name in enumerate(names):
        if t.columns[j].modelled:
            assert [r[j] for r in back] == [r[j] for r in rows], name
    assert [r[8] for r in back] == ["EU"] * len(rows) and {r[9] for r in back} == {""} and {r[6] for r in back} == {""}


def test_fresh_identifiers_keep_the_format_and_are_new(tmp_path):
    names, rows = mixed_rows()
    t = detect_columns(read_table(write_csv(tmp_path / "t.csv", names, rows)))
    ids = t.rows(torch.full((50, len(names)), float("nan")))
    new = [r[0] for r in ids]
    assert len(set(new)) == 50 and all(len(x) == 6 and x[0] == "C" for x in new)
    assert not set(new) & {r[0] for r in rows}
    words = np.array(["Ann Lee", "Bo Chan", "Cy Diaz"] * 10, dtype=object)
    names_col = detect_columns(frame_table(__import__("pandas").DataFrame({"name": [f"{w}{i}" for i, w in enumerate(words)]})))
    fresh = names_col.rows(torch.full((20, 1), float("nan")))
    assert len({r[0] for r in fresh}) == 20 and all(r[0][0].isupper() and " " in r[0] for r in fresh)


def test_codes_decode_to_the_nearest_level_and_the_empty_level_only_when_allowed():
    levels = np.array([f"L{k}" for k in range(100)] + [None] * 10, dtype=object)
    t = detect_columns(frame_table(__import__("pandas").DataFrame({"c": levels})), spec="c:category")
    c = t.columns[0]
    assert len(c.levels) == 100 > ONEHOT_MAX_LEVELS and c.encoding == "bits" and c.width == 7 and c.missing_level
    view = torch.arange(100, dtype=torch.float64)[:, None]
    codes = t.apply(view)
    noisy = codes + 0.2 * torch.randn(codes.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(t.invert(noisy), view)  # analog bits survive noise well below 1
    empty = t.apply(torch.tensor([[float("nan")]], dtype=torch.float64))
    assert torch.isnan(t.invert(empty)).all() and not torch.isnan(t.invert(empty, fill=True)).any()


def test_empty_cells_get_an_indicator_and_fill_draws():
    v = np.r_[np.random.default_rng(0).normal(5, 2, 90), [np.nan] * 10]
    t = detect_columns(v[:, None], ["x"])
    x = torch.from_numpy(v[:, None])
    codes = t.apply(x, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (100, 2)
    assert (codes[:90, 1] == -1).all() and (codes[90:, 1] == 1).all()
    assert codes[90:, 0].std() > 0.3  # filled with draws, not one repeated value
    assert torch.isnan(t.invert(codes)[90:]).all() and not torch.isnan(t.invert(codes, fill=True)).any()
    assert (t.apply(x, present=True)[90:, 1] == -1).all()  # imputation: the empty cells are to hold values
    known = t.known(x, present=True)
    assert known[90:].tolist() == [[0.0, 1.0]] * 10 and known[:90].eq(1).all()


def test_shares_stay_in_their_bounds_and_dates_keep_their_resolution(tmp_path):
    v = np.random.default_rng(0).beta(5, 2, 300)
    t = detect_columns(v[:, None], ["share"])
    assert t.columns[0].type == "share" and t.columns[0].logit
    y = t.invert(6 * torch.randn(2000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    path = tmp_path / "d.csv"
    path.write_text("when\n" + "\n".join(f"2024-03-0{d} 1{d}:30" for d in range(1, 10)) + "\n")
    t = detect_columns(read_table(path))
    assert t.columns[0].type == "datetime" and t.columns[0].format == "%Y-%m-%d %H:%M" and t.columns[0].step == 60
    out = t.rows(t.invert(torch.randn(5, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)))
    assert all(len(r[0]) == 16 and r[0][10] == " " and r[0].startswith("2024-0") for r in out)


def test_the_transform_survives_json_with_every_kind(tmp_path):
    import json

    names, rows = mixed_rows()
    t = detect_columns(read_table(write_csv(tmp_path / "t.csv", names, rows)))
    again = TableTransform.from_dict(json.loads(json.dumps(t.as_dict())))
    z = torch.randn(40, t.width, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(again.invert(z), t.invert(z), equal_nan=True)
    assert again.rows(again.invert(z)) == t.rows(t.invert(z))


@pytest.mark.parametrize("text, spec, match", [
    ("a,a\n1,2\n3,4\n", "auto", r"names column 'a' twice"),
    ("a,b\n1,2\n", "auto", r"has 1 data row; a table to learn from needs at least 2"),
    ("a,b\n1,2\n3,4,5\n", "auto", r"line 3 has 3 cells, the header has 2"),
    ("a,b\n1,x\n2,y\n", "b:real", r"column 'b' holds text \('x'\); it cannot be real"),
    ("a,b\n1,2.5\n2,x\n", "b:boolean", r"column 'b' is set boolean"),
])
def test_bad_tables_get_one_line(tmp_path, text, spec, match):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        detect_columns(read_table(path), spec=spec)
    assert "\n" not in str(info.value)


def test_thousands_of_distinct_strings_given_as_a_category_are_refused():
    import pandas as pd

    frame = pd.DataFrame({"code": [f"k{i}" for i in range(3000)], "x": np.arange(3000.0)})
    with pytest.raises(DataError, match=r"column 'code' has 3,000 distinct values, too many for a category \(at most 500\); "
                                        r"leave it out with code:identifier or code:text"):
        detect_columns(frame_table(frame), spec="code:category")
    assert detect_columns(frame_table(frame)).columns[0].type == "identifier"


def test_a_level_never_seen_is_refused_by_name(tmp_path):
    names, rows = mixed_rows()
    t = detect_columns(read_table(write_csv(tmp_path / "t.csv", names, rows)))
    rows[3][1] = "Z"
    raw = read_table(write_csv(tmp_path / "u.csv", names, rows), what="--input")
    with pytest.raises(DataError, match=r"--input '.*u.csv': column 'grade' has 'Z' on line 5, a level never seen in "
                                        r"training \(the levels are 'A', 'B', 'C'\)"):
        t.parse(raw)
    assert torch.isnan(t.parse(raw, strict=False)[3, 1])


def test_a_dataframe_keeps_its_dtypes():
    import pandas as pd

    frame = pd.DataFrame({"flag": [True, False, True, None] * 10, "when": pd.date_range("2020-01-01", periods=40),
                          "n": pd.array([1, 2, None, 4] * 10, dtype="Int64"), "kind": pd.Categorical(list("abcd") * 10)})
    raw = frame_table(frame)
    t = detect_columns(raw)
    assert [c.type for c in t.columns] == ["boolean", "datetime", "category", "category"]
    out = t.frame(t.parse(raw))
    assert str(out["flag"].dtype) == "boolean" and str(out["when"].dtype).startswith("datetime64")
    assert str(out["n"].dtype) == "Int64" and str(out["kind"].dtype) == "category"
    assert out["flag"].isna().sum() == 10 and out["n"].isna().sum() == 10
    pd.testing.assert_series_equal(out["when"], frame["when"], check_dtype=False, check_freq=False)


def test_parquet_and_tsv_read_like_csv(tmp_path):
    import pandas as pd

    names, rows = mixed_rows(n=40)
    csv = read_table(write_csv(tmp_path / "t.csv", names, rows))
    (tmp_path / "t.tsv").write_text("\n".join("\t".join(r) for r in [names, *rows]) + "\n")
    tsv = read_table(tmp_path / "t.tsv")
    pd.read_csv(tmp_path / "t.csv", dtype=str, keep_default_na=False).to_parquet(tmp_path / "t.parquet")
    pq = read_table(tmp_path / "t.parquet")
    for other in (tsv, pq):
        assert other.names == csv.names
        for a, b in zip(csv.columns, other.columns):
            assert a.dtype == b.dtype and (np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else list(a) == list(b))
