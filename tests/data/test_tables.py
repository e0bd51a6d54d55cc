import numpy as np
import pytest

from flowmaps.cli import main
from flowmaps.data.tables import read_csv_table


def _write(path, text):
    path.write_text(text)
    return path


def test_header_names_and_values(tmp_path):
    x, names = read_csv_table(_write(tmp_path / "t.csv", "a, b ,c\n1,2.5,-3\n4,5,6e-2\n"))
    assert names == ["a", "b", "c"]
    np.testing.assert_array_equal(x, [[1, 2.5, -3], [4, 5, 0.06]])


def test_no_header_gets_column_names(tmp_path):
    x, names = read_csv_table(_write(tmp_path / "t.csv", "1,2\n3,4\n"))
    assert names == ["column 0", "column 1"] and x.shape == (2, 2)


@pytest.mark.parametrize("text, match", [
    ("a,name\n1,x\n2,y\n", r"column 'name' holds text \('x' on line 2\); drop the column, encode it as numbers or keep data.columns=auto"),
    ("a,b\n1,2\n3,\n5,6\n", r"column 'b' has 1 missing or non-finite cells \(first on line 3\); fill them, drop those rows or keep data.columns=auto"),
    ("a,b\n1,NaN\n3,inf\n5,6\n", r"column 'b' has 2 missing or non-finite cells \(first on line 2\)"),
    ("a,b\n1,7\n3,7\n5,7\n", r"column 'b' is constant \(7 in every row\); drop it"),
    ("a,b\n1,2\n3\n", r"line 3 has 1 cells, the header has 2"),
    ("\n\n", r"is empty"),
])
def test_bad_tables_get_one_line_naming_the_column(tmp_path, text, match):
    with pytest.raises(ValueError, match=match) as info:
        read_csv_table(_write(tmp_path / "t.csv", text))
    assert "\n" not in str(info.value)


def test_cli_refuses_a_raw_table_with_text_and_writes_nothing(tmp_path, capsys):
    data = _write(tmp_path / "t.csv", "size,colour\n1,red\n2,blue\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--set", "train.steps=2", "--set", "data.columns=none"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "column 'colour' holds text" in err[0]
    assert not out.exists()


def test_inputs_may_hold_a_constant_column(tmp_path):
    x, _ = read_csv_table(_write(tmp_path / "t.csv", "a,b\n1,7\n3,7\n"), refuse_constant=False)
    np.testing.assert_array_equal(x[:, 1], [7, 7])
