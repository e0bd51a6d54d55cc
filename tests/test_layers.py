"""Imports run one way: the core, then losses / nets / data / metrics, then training, then the
application, then the command line. Checked on the source (every ``import`` statement, at the
top of a module or inside a function), so no function-local import can hide a cycle."""
import ast
from pathlib import Path

import flowmaps

PACKAGE = Path(flowmaps.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "averages", "schedule", "external", "flow_map", "jvp", "interpolants", "sampling", "guidance", "coupling", "exact"),
    ("losses", "nets", "data", "metrics", "diagnostics"),
    ("config", "recipes", "run_folder", "run", "train"),
    ("kinds", "plots", "inputs", "evaluate", "ema_selection", "audit", "report", "edit", "encode", "anomaly",
     "autoconfig", "step_timing", "impute", "pipeline", "table_model",
     "feature_anomaly", "picture_codes"),
    ("cli", "cli_inputs", "__init__"),
)
"""Each module (or subpackage) of flowmaps by layer, lowest first."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The flowmaps modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("flowmaps"):
                target = node.module.removeprefix("flowmaps").lstrip(".")  # type: ignore[union-attr]
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}".lstrip(".")
                found.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("flowmaps").lstrip(".") for a in node.names if a.name.startswith("flowmaps.")}
    return {m for m in found if m in modules and m != name}


def _layer(name: str) -> int:
    top = name.split(".")[0] if name else "__init__"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"flowmaps.{name} has no layer in tests/test_layers.py: add it to LAYERS")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_import_points_to_the_same_or_a_lower_layer():
    upward = [f"flowmaps.{m} -> flowmaps.{t}" for m, ts in _graph().items() for t in sorted(ts) if _layer(t) > _layer(m)]
    assert upward == []


def test_no_import_cycle_even_through_function_local_imports():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The checker itself: a function-local relative import is an edge."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from .train.trainer import Trainer\n    return Trainer\n")
    modules = {"m": src, "train.trainer": src, "train": src}
    assert _imports("m", src, modules) == {"train.trainer"}


def test_function_local_imports_are_only_for_slow_modules():
    """Inside flowmaps, a function imports lazily only the plotting module (matplotlib)."""
    lazy = set()
    for path in _modules().values():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level and id(node) not in top:
                lazy.add(node.module)
    assert lazy <= {"plots"}
