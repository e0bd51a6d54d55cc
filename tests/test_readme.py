"""The README's Python tour runs as written (with fewer training steps)."""
import re
from pathlib import Path


def test_readme_api_snippet_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"## The Python API in ten lines\n\n```python\n(.*?)```", text, re.S).group(1)
    assert "range(2000)" in code
    scope: dict = {}
    exec(compile(code.replace("range(2000)", "range(5)"), "README.md", "exec"), scope)
    assert scope["x1"].shape == (10000, 2)


def test_readme_pipeline_snippet_runs(tmp_path, monkeypatch):
    import numpy as np

    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"callable from Python\n.*?```python\n(.*?)```", text, re.S).group(1)
    short = 'data="points.csv", overrides=["train.steps=20", "train.progress=false", "eval.num_samples=500"]'
    assert 'data="points.csv", minutes=3' in code
    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "points.csv", rng.standard_normal((120, 3)), delimiter=",", header="a,b,c", comments="")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace('data="points.csv", minutes=3', short), "README.md", "exec"), scope)
    assert scope["done"].report.is_file() and "w2" in scope["again"].result["metrics"]["map"]["4"]


def test_readme_table_snippet_runs(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"\*\*From Python\*\*.*?```python\n(.*?)```", text, re.S).group(1)
    fit = "flowmaps.TableModel.fit(df, minutes=2)"
    assert fit in code
    short = 'flowmaps.TableModel.fit(df, minutes=None, out="m", settings={"train.steps": 30, "eval.num_samples": 300})'
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace(fit, short), "README.md", "exec"), scope)
    assert scope["filled"].isna().sum().sum() == 0 and list(scope["rows"].columns) == list(scope["df"].columns)
    assert set(scope["adelie"]["species"]) == {"Adelie"} and (tmp_path / "penguins-model" / "config.yaml").is_file()
