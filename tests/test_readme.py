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
